//! Secret values: a type that cannot be printed, serialised or compared by accident.

use std::fmt;

/// A secret string (the GitHub PAT, a webhook secret, a JIT runner config).
///
/// `Debug` and `Display` print `[redacted]`; there is no `Serialize`. The value is reachable
/// only through [`Secret::expose`], which makes every use greppable.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret text. Only call this where the value leaves the process on purpose
    /// (an `Authorization` header, an HMAC key, a `secureValue`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints_its_value() {
        let s = Secret::new("ghp_supersecret");
        assert_eq!(format!("{s}"), "[redacted]");
        assert!(!format!("{s:?}").contains("supersecret"));
        assert!(!format!("{:?}", Some(&s)).contains("supersecret"));
        assert_eq!(s.expose(), "ghp_supersecret");
    }
}
