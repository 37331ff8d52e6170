//! Statements whose identifiers are computed at run time: `create database`, `create
//! role`, `grant`, `reassign owned` and the like, for a tenant's own database and role
//! or a test's throw-away database.
//!
//! PostgreSQL cannot take an identifier as a bound parameter, so these are the one kind
//! of SQL the services build as text (README, "Choices"), and they are built only here:
//! a statement is a fixed template whose `{}` holes are filled with checked, quoted
//! [`Ident`]s, quoted [`Literal`]s or numbers, and it runs through `sqlx::raw_sql`.
//! Everything with a fixed shape is a `sqlx::query!` macro instead, checked at compile
//! time.
//!
//! ```ignore
//! let database = Ident::new("tenant_acme")?;
//! ddl::execute(&mut admin, "revoke all on database {} from public", &[&database]).await?;
//! ```

use std::fmt;

use sqlx::PgExecutor;

/// An SQL identifier made only of `a-z`, `0-9` and `_` (1 to 63 bytes, PostgreSQL's
/// limit), written double-quoted. Names are built from validated parts (a slug, a
/// configured prefix, a random suffix); anything else is refused, never escaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ident(String);

/// A name that is not a plain lowercase identifier.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not an identifier of 1 to 63 of a-z, 0-9 and '_'")]
pub struct InvalidIdent(pub String);

impl Ident {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidIdent> {
        let name = name.into();
        let plain = (1..=63).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if plain {
            Ok(Self(name))
        } else {
            Err(InvalidIdent(name))
        }
    }

    /// The name as PostgreSQL stores it (unquoted), for comparisons and bound parameters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A string constant (a generated role password), written single-quoted with quotes
/// doubled (`standard_conforming_strings` is on, so a backslash is just a backslash).
#[derive(Clone, Copy)]
pub struct Literal<'a>(pub &'a str);

impl fmt::Debug for Literal<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Literals are passwords: never in a log line.
        f.write_str("Literal(..)")
    }
}

/// What may fill a hole of a statement's template.
pub trait Part: Sync {
    fn write_to(&self, sql: &mut String);
}

impl Part for Ident {
    fn write_to(&self, sql: &mut String) {
        sql.push('"');
        sql.push_str(&self.0);
        sql.push('"');
    }
}

impl Part for Literal<'_> {
    fn write_to(&self, sql: &mut String) {
        sql.push('\'');
        sql.push_str(&self.0.replace('\'', "''"));
        sql.push('\'');
    }
}

impl Part for u32 {
    fn write_to(&self, sql: &mut String) {
        sql.push_str(&self.to_string());
    }
}

/// `template` with each `{}` replaced, in order, by the next of `parts`.
///
/// # Panics
/// When the holes and the parts do not pair up: a bug in the caller's fixed template.
pub fn statement(template: &'static str, parts: &[&dyn Part]) -> String {
    let mut sql = String::with_capacity(template.len() + 16 * parts.len());
    let mut pieces = template.split("{}");
    sql.push_str(pieces.next().unwrap_or_default());
    let mut parts = parts.iter();
    for piece in pieces {
        parts
            .next()
            .unwrap_or_else(|| panic!("more holes than parts in {template:?}"))
            .write_to(&mut sql);
        sql.push_str(piece);
    }
    assert!(
        parts.next().is_none(),
        "more parts than holes in {template:?}"
    );
    sql
}

/// Runs `template` filled with `parts` (see [`statement`]) as one simple-protocol
/// statement.
pub async fn execute(
    db: impl PgExecutor<'_>,
    template: &'static str,
    parts: &[&dyn Part],
) -> sqlx::Result<()> {
    let sql = statement(template, parts);
    db.execute(sqlx::raw_sql(&sql)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_literals_escaped() {
        let role = Ident::new("tenant_acme").unwrap();
        let sql = statement(
            "create role {} login password {} connection limit {}",
            &[&role, &Literal("it's"), &5u32],
        );
        assert_eq!(
            sql,
            r#"create role "tenant_acme" login password 'it''s' connection limit 5"#
        );
    }

    #[test]
    fn only_plain_lowercase_identifiers_are_accepted() {
        for bad in ["", "Acme", "a\"b", "a b", "a;drop", &"x".repeat(64)] {
            assert!(Ident::new(bad).is_err(), "{bad:?}");
        }
        assert!(Ident::new("b1a2_template_owner").is_ok());
    }

    #[test]
    #[should_panic(expected = "more parts than holes")]
    fn a_template_must_use_every_part() {
        let db = Ident::new("x").unwrap();
        statement("drop database {}", &[&db, &db]);
    }
}
