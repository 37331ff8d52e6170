//! A tenant's slug: its subdomain and the root of its database and role names, so it is
//! checked completely before it gets anywhere near SQL.

/// Names a tenant may not take: infrastructure subdomains and PostgreSQL's own databases.
pub const RESERVED: &[&str] = &[
    "www",
    "api",
    "admin",
    "app",
    "static",
    "docs",
    "status",
    "mail",
    "smtp",
    "imap",
    "ftp",
    "cdn",
    "assets",
    "auth",
    "login",
    "signup",
    "register",
    "billing",
    "support",
    "help",
    "internal",
    "nexus",
    "root",
    "system",
    "public",
    "security",
    "blog",
    "dev",
    "staging",
    "test",
    "localhost",
    "postgres",
    "template0",
    "template1",
];

/// `^[a-z][a-z0-9-]{1,30}[a-z0-9]$`, not reserved.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Slug(String);

impl Slug {
    pub fn parse(input: &str) -> Result<Self, String> {
        let bytes = input.as_bytes();
        let shape_ok = (3..=32).contains(&bytes.len())
            && bytes[0].is_ascii_lowercase()
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
            && bytes[bytes.len() - 1] != b'-';
        if !shape_ok {
            return Err(
                "must be 3 to 32 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'"
                    .to_owned(),
            );
        }
        if RESERVED.contains(&input) {
            return Err(format!("`{input}` is reserved"));
        }
        Ok(Self(input.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The slug as a PostgreSQL identifier part: `-` becomes `_` (slugs have no `_`,
    /// so distinct slugs stay distinct).
    pub fn ident(&self) -> String {
        self.0.replace('-', "_")
    }
}

impl std::fmt::Display for Slug {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::Slug;

    #[test]
    fn accepts_plain_slugs() {
        for ok in ["acme", "big-co", "a1b", "x2-y3-z4", &"a".repeat(32)] {
            assert!(Slug::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_injection_spaces_reserved_and_long_slugs() {
        let long = "a".repeat(33);
        for bad in [
            "a\";DROP DATABASE x;--",
            "a b",
            "postgres",
            "template1",
            "www",
            "Acme",
            "ab",
            "-ab",
            "ab-",
            "1ab",
            "a_b",
            "",
            "acme.evil",
            "ünï",
            &long,
        ] {
            assert!(Slug::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn identifiers_keep_distinct_slugs_distinct() {
        assert_eq!(Slug::parse("big-co").unwrap().ident(), "big_co");
    }
}
