//! The keys and values the decoder's self-attention has seen, in buffers
//! allocated once at a fixed capacity and written in place.

use mlx::{Array, Dtype};

/// One layer's keys and values, `[1, kv_heads, capacity, head_dim]` each.
#[derive(Debug, Clone)]
struct LayerKv {
    keys: Array,
    values: Array,
}

/// Every layer's keys and values of the first `len` positions.
#[derive(Debug, Clone)]
pub struct KvCache {
    layers: Vec<LayerKv>,
    capacity: i32,
    len: i32,
}

impl KvCache {
    /// Zeroed buffers for `capacity` positions of `layers` layers.
    pub fn new(layers: i32, kv_heads: i32, head_dim: i32, capacity: i32) -> mlx::Result<KvCache> {
        let zeros = || Array::zeros(&[1, kv_heads, capacity, head_dim], Dtype::F32);
        let layers = (0..layers)
            .map(|_| {
                let (keys, values) = (zeros()?, zeros()?);
                // Evaluated, each buffer is its own allocation that the first
                // write can reuse in place.
                mlx::eval(&[&keys, &values])?;
                Ok(LayerKv { keys, values })
            })
            .collect::<mlx::Result<_>>()?;
        Ok(KvCache {
            layers,
            capacity,
            len: 0,
        })
    }

    /// Positions filled.
    pub fn len(&self) -> i32 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> i32 {
        self.capacity
    }

    /// Forgets every position from `len` on (a streaming decoder re-decodes
    /// from a shorter prefix); the buffers stay allocated.
    pub fn truncate(&mut self, len: i32) -> mlx::Result<()> {
        if !(0..=self.len).contains(&len) {
            return Err(mlx::Error::Mlx(format!(
                "cannot roll the cache back to {len} positions: it holds {}",
                self.len
            )));
        }
        self.len = len;
        Ok(())
    }

    /// Checks that `count` more positions fit.
    pub(crate) fn check_room(&self, count: i32) -> mlx::Result<()> {
        if self.len + count > self.capacity {
            return Err(mlx::Error::Mlx(format!(
                "the key-value cache holds {} positions: {} filled, {count} more do not fit",
                self.capacity, self.len
            )));
        }
        Ok(())
    }

    /// Writes `keys` and `values` (`[1, kv_heads, L, head_dim]`) of layer
    /// `layer` at positions `len..len + L` and returns positions `..len + L`.
    /// The updated buffers replace the old ones before anything evaluates
    /// them, so that then only the update holds the old ones and MLX writes
    /// into them in place (a clone of the cache kept meanwhile costs a copy).
    /// [`Self::advance`] then counts the positions once every layer has
    /// written them.
    pub(crate) fn write(
        &mut self,
        layer: usize,
        keys: &Array,
        values: &Array,
    ) -> mlx::Result<(Array, Array)> {
        let start = self.len;
        let end = start + keys.dim(2)?;
        let kv = self
            .layers
            .get_mut(layer)
            .ok_or_else(|| mlx::Error::Mlx(format!("the cache has no layer {layer}")))?;
        let update = |buffer: &mut Array, new: &Array| -> mlx::Result<Array> {
            let mut stop = buffer.shape();
            stop[2] = end;
            *buffer = buffer.slice_update(new, &[0, 0, start, 0], &stop, &[1, 1, 1, 1])?;
            buffer.slice_axis(2, 0, end)
        };
        Ok((update(&mut kv.keys, keys)?, update(&mut kv.values, values)?))
    }

    /// Counts `count` positions written by every layer.
    pub(crate) fn advance(&mut self, count: i32) {
        self.len += count;
    }
}
