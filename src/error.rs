//! The run's error type: any module error that can explain itself through [`Diagnose`] (its message
//! plus one hint line with the fix). A leaf every module's error enum implements; no AWS API.

/// An error the action can explain: its message plus one hint line with the fix.
pub trait Diagnose: std::error::Error + Send + Sync + 'static {
    /// One line telling the reader how to fix it.
    fn hint(&self) -> String;
}

/// The run's error: any module error that can explain itself.
#[derive(Debug)]
pub struct Error(Box<dyn Diagnose>);

impl Error {
    /// The fix, in one line.
    pub fn hint(&self) -> String {
        self.0.hint()
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl<E: Diagnose> From<E> for Error {
    fn from(e: E) -> Self {
        Error(Box::new(e))
    }
}
