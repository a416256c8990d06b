//! Multi-row statements shared by the store's bulk writers (webhook ingress, sync batches):
//! statement sizes in powers of two within the bind-parameter limit, and placeholders numbered
//! per backend. `ingress.rs` explains why these shapes.

use sqlx::any::{AnyArguments, AnyRow};
use sqlx::query::Query;
use sqlx::{Any, Transaction};

use super::{Backend, StoreError};

/// How many rows one `INSERT` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rows {
    /// One statement per row: a failure names its row.
    One,
    /// As many as fit, in power-of-two statement sizes.
    Many,
}

/// Most bind parameters one statement may carry: SQLite's `SQLITE_MAX_VARIABLE_NUMBER` (32 766
/// since 3.32; libsqlite3-sys bundles 3.46), PostgreSQL's 16-bit parameter count.
pub(crate) fn max_params(backend: Backend) -> usize {
    match backend {
        Backend::Sqlite => 32_766,
        Backend::Postgres => 65_535,
    }
}

/// The largest power of two not above `n` (`n >= 1`).
fn floor_pow2(n: usize) -> usize {
    1 << (usize::BITS - 1 - n.max(1).leading_zeros())
}

/// Rows per statement for `n` rows of `params` parameters each.
pub(crate) fn statement_sizes(n: usize, params: usize, rows: Rows, backend: Backend) -> Vec<usize> {
    let cap = match rows {
        Rows::One => 1,
        Rows::Many => floor_pow2(max_params(backend) / params.max(1)),
    };
    let mut sizes = Vec::new();
    let mut left = n;
    while left > 0 {
        let size = cap.min(floor_pow2(left));
        sizes.push(size);
        left -= size;
    }
    sizes
}

/// A multi-row insert: `{head} VALUES {row}, {row}, …{tail}`, each `?` in `row` standing for the
/// next parameter.
pub(crate) struct InsertSql {
    pub head: &'static str,
    pub row: &'static str,
    pub tail: &'static str,
}

impl InsertSql {
    pub(crate) fn params(&self) -> usize {
        self.row.matches('?').count()
    }

    /// The statement for `rows` rows. PostgreSQL numbers its parameters (`$1`, `$2`, …); SQLite
    /// gets anonymous `?`, bound by position. SQLite treats `$1` as a *named* parameter: every
    /// name is looked up in a list when the statement is parsed, and again when sqlx binds it
    /// (`sqlite3_bind_parameter_name`), which is quadratic in the number of parameters: with `$n`
    /// a batch of 512 requests took nine times as long.
    pub(crate) fn sql(&self, rows: usize, backend: Backend) -> String {
        let mut sql = String::with_capacity(self.head.len() + self.tail.len() + rows * (self.row.len() + 32));
        sql.push_str(self.head);
        sql.push_str(" VALUES ");
        let mut n = 0;
        for r in 0..rows {
            if r > 0 {
                sql.push_str(", ");
            }
            match backend {
                Backend::Sqlite => sql.push_str(self.row),
                Backend::Postgres => {
                    for part in self.row.split_inclusive('?') {
                        match part.strip_suffix('?') {
                            Some(text) => {
                                n += 1;
                                sql.push_str(text);
                                sql.push('$');
                                sql.push_str(&n.to_string());
                            }
                            None => sql.push_str(part),
                        }
                    }
                }
            }
        }
        sql.push_str(self.tail);
        sql
    }
}

pub(crate) type AnyQuery<'q> = Query<'q, Any, AnyArguments<'q>>;

/// Inserts `rows` with `stmt` in statements shaped by `shape`, binding each row with `bind`;
/// returns what the statements returned. A failing statement's error goes through `fail` with
/// the rows it carried.
pub(crate) async fn insert_rows<T>(
    tx: &mut Transaction<'static, Any>,
    backend: Backend,
    shape: Rows,
    stmt: &InsertSql,
    rows: &[T],
    bind: impl for<'q> Fn(AnyQuery<'q>, &'q T) -> AnyQuery<'q>,
    fail: impl Fn(sqlx::Error, &[T]) -> StoreError,
) -> Result<Vec<AnyRow>, StoreError> {
    let mut returned = Vec::new();
    let mut rest = rows;
    for size in statement_sizes(rows.len(), stmt.params(), shape, backend) {
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        let sql = stmt.sql(size, backend);
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = bind(query, row);
        }
        returned.extend(query.fetch_all(&mut **tx).await.map_err(|e| fail(e, chunk))?);
    }
    Ok(returned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statement_sizes_are_powers_of_two_within_the_parameter_limit() {
        assert_eq!(statement_sizes(300, 11, Rows::Many, Backend::Sqlite), [256, 32, 8, 4]);
        assert_eq!(statement_sizes(3, 11, Rows::One, Backend::Sqlite), [1, 1, 1]);
        assert!(statement_sizes(0, 11, Rows::Many, Backend::Sqlite).is_empty());
        // 32 766 / 11 = 2978 rows fit: statements of 2048.
        assert_eq!(statement_sizes(5000, 11, Rows::Many, Backend::Sqlite), [2048, 2048, 512, 256, 128, 8]);
        assert_eq!(statement_sizes(5000, 11, Rows::Many, Backend::Postgres), [4096, 512, 256, 128, 8]);
        for (n, params) in [(100_000, 11), (7, 9), (65_536, 1)] {
            for backend in [Backend::Sqlite, Backend::Postgres] {
                let sizes = statement_sizes(n, params, Rows::Many, backend);
                assert_eq!(sizes.iter().sum::<usize>(), n);
                assert!(sizes.iter().all(|s| s.is_power_of_two() && s * params <= max_params(backend)));
            }
        }
    }

    #[test]
    fn insert_sql_numbers_placeholders_across_rows() {
        let stmt = InsertSql { head: "INSERT INTO t (a, b, c)", row: "(?, 'x', ?, ?)", tail: " RETURNING a" };
        assert_eq!(stmt.params(), 3);
        assert_eq!(
            stmt.sql(2, Backend::Postgres),
            "INSERT INTO t (a, b, c) VALUES ($1, 'x', $2, $3), ($4, 'x', $5, $6) RETURNING a"
        );
        assert_eq!(
            stmt.sql(2, Backend::Sqlite),
            "INSERT INTO t (a, b, c) VALUES (?, 'x', ?, ?), (?, 'x', ?, ?) RETURNING a"
        );
    }
}
