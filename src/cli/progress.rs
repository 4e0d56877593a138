//! The progress bar of the long-running subcommands.

use indicatif::{ProgressBar, ProgressStyle};

/// A stderr progress bar (indicatif hides it when stderr is not a terminal).
pub fn progress_bar(quiet: bool, template: &str) -> ProgressBar {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}
