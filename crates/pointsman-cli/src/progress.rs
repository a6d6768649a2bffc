//! Progress bars on stderr (hidden with `--quiet` or when stderr is not a terminal).

use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The progress display of one command.
#[derive(Debug)]
pub struct Progress {
    multi: MultiProgress,
    quiet: bool,
}

impl Progress {
    /// A display, hidden when `quiet`.
    pub fn new(quiet: bool) -> Self {
        let target = if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        };
        Progress {
            multi: MultiProgress::with_draw_target(target),
            quiet,
        }
    }

    /// A spinner for a step of unknown length.
    pub fn spinner(&self, message: impl Into<String>) -> ProgressBar {
        let pb = self.multi.add(ProgressBar::new_spinner());
        pb.set_style(
            ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
                .expect("the spinner template is valid"),
        );
        pb.set_message(message.into());
        pb.enable_steady_tick(Duration::from_millis(120));
        pb
    }

    /// Whether the display is hidden (`--quiet`).
    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    /// Removes every bar from the screen.
    pub fn clear(&self) {
        let _ = self.multi.clear();
    }
}

impl Progress {
    /// A bar for `len` steps.
    pub fn bar(&self, len: u64, message: impl Into<String>) -> ProgressBar {
        let pb = self.multi.add(ProgressBar::new(len));
        pb.set_style(
            ProgressStyle::with_template("{msg} {wide_bar} {pos}/{len} [{elapsed}<{eta}]")
                .expect("the bar template is valid"),
        );
        pb.set_message(message.into());
        pb
    }
}
