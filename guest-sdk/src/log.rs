//! Structured logging into the installation's operation log.
//!
//! The macros take `format!` arguments, then optionally `;` and `key = value` fields (an
//! identifier or a string literal as key, any `Display` value):
//!
//! ```ignore
//! patchbay_sdk::info!("created session {}", session.id; amount = req.amount.amount, "stripe.livemode" = live);
//! patchbay_sdk::warn!("provider is slow");
//! ```
//!
//! The host scrubs the installation's secret values from messages and fields before storing them.

pub use crate::bindings::connector::patchbay::connector::log::Level;
use crate::types::Fields;

/// Logs `message` with `fields` at `level`.
pub fn log(level: Level, message: &str, fields: &Fields) {
    crate::bindings::connector::patchbay::connector::log::log(level, message, fields);
}

/// Logs at an explicit [`Level`]: `log!(Level::Info, "fmt", args; key = value)`.
#[macro_export]
macro_rules! log {
    ($level:expr, $fmt:literal $(, $arg:expr)* $(,)? ; $($key:tt = $value:expr),* $(,)?) => {
        $crate::log::log(
            $level,
            &::std::format!($fmt $(, $arg)*),
            &::std::vec![$((
                ::std::string::ToString::to_string($crate::__log_key!($key)),
                ::std::string::ToString::to_string(&$value),
            )),*],
        )
    };
    ($level:expr, $($arg:tt)+) => {
        $crate::log::log($level, &::std::format!($($arg)+), &::std::vec::Vec::new())
    };
}

/// Logs at `trace` level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Trace, $($arg)+) };
}

/// Logs at `debug` level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Debug, $($arg)+) };
}

/// Logs at `info` level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Info, $($arg)+) };
}

/// Logs at `warn` level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Warn, $($arg)+) };
}

/// Logs at `error` level; see [`log!`](crate::log!).
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log!($crate::log::Level::Error, $($arg)+) };
}

/// Turns a field key (identifier or string literal) into a `&str`.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_key {
    ($key:ident) => {
        ::core::stringify!($key)
    };
    ($key:literal) => {
        $key
    };
}

#[cfg(test)]
mod tests {
    /// Every accepted form of the macros expands and type-checks (calling them needs the host).
    #[allow(dead_code)]
    fn forms() {
        let n = 3;
        crate::info!("plain");
        crate::debug!("args {} {n}", 1);
        crate::trace!("trailing comma {}", n,);
        crate::warn!("fields {}", n; count = n, "dotted.key" = "v");
        crate::error!("fields only"; a = 1, b = 'x',);
        crate::log!(crate::log::Level::Trace, "explicit level"; k = true);
    }
}
