//! MLX 0.32's streams belong to the thread that made them: a lazy array
//! made on one thread cannot be evaluated on another, unless it was made
//! inside `evaluating_created` (and not inside its `unnoted`).

use mlx::Array;

/// A lazy array: the transpose of constant data, made on this thread.
fn lazy() -> Array {
    let data = Array::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0], &[2, 3]).unwrap();
    data.transpose(&[1, 0]).unwrap().add_scalar(1.0).unwrap()
}

fn on_another_thread(array: Array) -> mlx::Result<Vec<f32>> {
    std::thread::spawn(move || array.to_vec::<f32>())
        .join()
        .unwrap()
}

#[test]
fn arrays_made_inside_evaluating_created_serve_any_thread() {
    let left_lazy = lazy();
    let err = on_another_thread(left_lazy).unwrap_err().to_string();
    assert!(err.contains("no Stream"), "{err}");

    let (kept, skipped) =
        mlx::evaluating_created(|| Ok::<_, mlx::Error>((lazy(), mlx::unnoted(lazy)))).unwrap();
    assert_eq!(
        on_another_thread(kept).unwrap(),
        vec![2.0, 5.0, 3.0, 6.0, 4.0, 7.0]
    );
    // What was made unnoted stayed lazy on this thread.
    let err = on_another_thread(skipped).unwrap_err().to_string();
    assert!(err.contains("no Stream"), "{err}");
}
