//! What the file-reading commands (`slipway drift`, `slipway validate`) write to the terminal:
//! a progress line on stderr while large files are read, and stdout that tolerates a reader
//! that went away (`slipway drift --json | head`).

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use slipway_monitor::read::Progress;

/// Files smaller than this are read without a progress line.
pub const PROGRESS_MIN_BYTES: u64 = 16 << 20;

/// Whether to draw a progress line: only for a person watching (stderr is a terminal, so
/// logs and captured output stay clean) and only when a file is big enough to wait for.
pub fn show_progress(stderr_is_terminal: bool, paths: &[&Path]) -> bool {
    let size = |p: &&Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    stderr_is_terminal && paths.iter().map(size).max().unwrap_or(0) >= PROGRESS_MIN_BYTES
}

/// One stderr line showing how far each file has been read (`reading: reference  40%  current
/// 12%`), redrawn at most 10 times a second; [`ProgressLine::side`] is what a reader updates.
pub struct ProgressLine {
    labels: Vec<&'static str>,
    state: Mutex<(Vec<f64>, Instant)>,
    shown: bool,
}

pub struct Side<'a> {
    line: &'a ProgressLine,
    index: usize,
}

impl ProgressLine {
    /// A line with one share per label; drawn only when `show` (see [`show_progress`]).
    pub fn new(labels: &[&'static str], show: bool) -> ProgressLine {
        let state = Mutex::new((vec![0.0; labels.len()], Instant::now()));
        ProgressLine { labels: labels.to_vec(), state, shown: show }
    }

    pub fn side(&self, index: usize) -> Side<'_> {
        Side { line: self, index }
    }

    /// The side of the file under `label`; one the line does not show updates nothing.
    pub fn side_named(&self, label: &str) -> Side<'_> {
        Side { line: self, index: self.labels.iter().position(|l| *l == label).unwrap_or(usize::MAX) }
    }

    fn update(&self, index: usize, done: u64, total: u64) {
        if !self.shown {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(share) = state.0.get_mut(index) {
            *share = if total == 0 { 1.0 } else { done as f64 / total as f64 };
        }
        if state.1.elapsed() < Duration::from_millis(100) && done < total {
            return;
        }
        state.1 = Instant::now();
        let mut text = String::from("\rreading:");
        for (label, share) in self.labels.iter().zip(&state.0) {
            text.push_str(&format!(" {label} {:>3.0}% ", share * 100.0));
        }
        // A progress line that cannot be drawn is not worth failing the command for.
        let mut err = std::io::stderr().lock();
        let _ = err.write_all(text.trim_end().as_bytes());
        let _ = err.flush();
    }

    /// Ends the line, so that what follows starts on a fresh one.
    pub fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

impl Progress for Side<'_> {
    fn update(&self, done: u64, total: u64) {
        self.line.update(self.index, done, total);
    }
}

/// Whether stderr is a terminal (checked once per command).
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

/// Writes to stdout with `write`. A closed pipe (EPIPE: `| head` has what it wanted) is not an
/// error: the rest of the output is dropped quietly and the command goes on to write its
/// report files and exit with its usual status, as ripgrep does. We do not die of SIGPIPE the
/// way git does (status 141): Rust ignores SIGPIPE, and a verdict status (`--fail-on-drift`)
/// and the HTML report should not depend on how much of stdout someone read.
pub fn to_stdout(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match write(&mut out).and_then(|()| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_progress_line_unless_a_terminal_watches_a_large_file() {
        let dir = tempfile::tempdir().unwrap();
        let (small, large) = (dir.path().join("s.csv"), dir.path().join("l.csv"));
        std::fs::write(&small, "x\n1\n").unwrap();
        std::fs::File::create(&large).unwrap().set_len(PROGRESS_MIN_BYTES).unwrap();
        assert!(!show_progress(false, &[&small, &large]));
        assert!(!show_progress(true, &[&small]));
        assert!(!show_progress(true, &[&dir.path().join("missing.csv")]));
        assert!(show_progress(true, &[&small, &large]));
    }

    #[test]
    fn a_hidden_line_keeps_quiet_and_a_closed_pipe_is_not_an_error() {
        let line = ProgressLine::new(&["current"], false);
        line.side(0).update(5, 10);
        assert_eq!(line.state.lock().unwrap().0, vec![0.0]);
        let pipe = || Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe));
        assert!(to_stdout(|_| pipe()).is_ok());
        let other = || Err(std::io::Error::from(std::io::ErrorKind::PermissionDenied));
        assert!(to_stdout(|_| other()).is_err());
    }
}
