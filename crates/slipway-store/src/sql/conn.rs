//! One synchronous connection interface over SQLite and PostgreSQL, so the SQL modules are
//! written once.
//!
//! It is the subset of rusqlite's API the store uses (`execute`, `query_row`, cached
//! statements, `query_map`, row cursors, `get::<_, T>`), and rusqlite's value types are the
//! lingua franca: arguments are anything `rusqlite::ToSql`, columns are read with
//! `rusqlite::types::FromSql`. On PostgreSQL a statement's `?N`/`?` placeholders become `$N`,
//! each argument is encoded for the type the server inferred for it, and each column is decoded
//! into a SQLite value first. SQL text must therefore be portable: `ON CONFLICT` instead of
//! `INSERT OR …`, `RETURNING` instead of `last_insert_rowid()`, integers and doubles only.
//!
//! PostgreSQL calls run on a blocking thread and wait for the async client with
//! `Handle::block_on`; the client's connection task runs on the server's runtime.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use rusqlite::ToSql;
use rusqlite::types::{FromSql, FromSqlError, ToSqlOutput, ValueRef};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::{IsNull, Type, to_sql_checked};

/// A failure of one statement.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error("query returned no rows")]
    NoRows,
    #[error("column {0}: {1}")]
    Column(usize, String),
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;

impl DbError {
    /// PostgreSQL's SQLSTATE, when the server reported one.
    pub fn code(&self) -> Option<&SqlState> {
        match self {
            DbError::Postgres(e) => e.code(),
            _ => None,
        }
    }
}

/// `Ok(None)` for a query that found nothing, as rusqlite's extension of the same name.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(DbError::NoRows | DbError::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Arguments of one statement.
pub trait Params {
    fn args(&self) -> Vec<&dyn ToSql>;
}

impl Params for &[&dyn ToSql] {
    fn args(&self) -> Vec<&dyn ToSql> {
        self.to_vec()
    }
}

impl<T: ToSql, const N: usize> Params for [T; N] {
    fn args(&self) -> Vec<&dyn ToSql> {
        self.iter().map(|a| a as &dyn ToSql).collect()
    }
}

impl<A: ToSql, B: ToSql> Params for (A, B) {
    fn args(&self) -> Vec<&dyn ToSql> {
        vec![&self.0, &self.1]
    }
}

/// Arguments from an iterator, as rusqlite's `params_from_iter`.
pub struct FromIter<T>(Vec<T>);

pub fn params_from_iter<I: IntoIterator>(items: I) -> FromIter<I::Item>
where
    I::Item: ToSql,
{
    FromIter(items.into_iter().collect())
}

impl<T: ToSql> Params for FromIter<T> {
    fn args(&self) -> Vec<&dyn ToSql> {
        self.0.iter().map(|a| a as &dyn ToSql).collect()
    }
}

/// `params![a, b, …]`: a slice of arguments of mixed types.
macro_rules! params {
    () => { &[] as &[&dyn rusqlite::ToSql] };
    ($($arg:expr),+ $(,)?) => { &[$(&$arg as &dyn rusqlite::ToSql),+] as &[&dyn rusqlite::ToSql] };
}
pub(crate) use params;

/// A PostgreSQL client with its prepared statements, checked out of a pool for one request.
pub struct PgSession {
    pub client: tokio_postgres::Client,
    statements: RefCell<HashMap<String, tokio_postgres::Statement>>,
    /// The SQLSTATE of the last failed statement, which decides whether a request is retried.
    last_code: Cell<Option<SqlState>>,
    runtime: tokio::runtime::Handle,
}

impl PgSession {
    pub fn new(client: tokio_postgres::Client, runtime: tokio::runtime::Handle) -> Self {
        Self { client, statements: RefCell::default(), last_code: Cell::new(None), runtime }
    }

    /// Runs a future of the client to completion from a blocking thread.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime.block_on(f)
    }

    pub fn take_last_code(&self) -> Option<SqlState> {
        self.last_code.take()
    }

    /// Remembers the SQLSTATE of a failure that did not go through a statement (a COMMIT).
    pub fn note_code(&self, e: &DbError) {
        self.last_code.set(e.code().cloned());
    }

    fn note<T>(&self, r: Result<T, tokio_postgres::Error>) -> Result<T> {
        r.map_err(|e| {
            self.last_code.set(e.code().cloned());
            DbError::Postgres(e)
        })
    }

    fn statement(&self, sql: &str, cache: bool) -> Result<tokio_postgres::Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let stmt = self.note(self.block_on(self.client.prepare(&placeholders(sql))))?;
        if cache {
            self.statements.borrow_mut().insert(sql.to_string(), stmt.clone());
        }
        Ok(stmt)
    }

    fn execute(&self, stmt: &tokio_postgres::Statement, args: &[&dyn ToSql]) -> Result<usize> {
        let values = pg_args(args)?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values.iter().map(|v| v as _).collect();
        Ok(self.note(self.block_on(self.client.execute(stmt, &refs)))? as usize)
    }

    fn query(&self, stmt: &tokio_postgres::Statement, args: &[&dyn ToSql]) -> Result<Vec<tokio_postgres::Row>> {
        let values = pg_args(args)?;
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = values.iter().map(|v| v as _).collect();
        self.note(self.block_on(self.client.query(stmt, &refs)))
    }
}

/// `?N` and `?` placeholders outside string literals become `$N` (a bare `?` takes the next
/// number after the largest seen so far, as in SQLite).
pub fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let (mut in_string, mut highest) = (false, 0u32);
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_string = !in_string;
                out.push(c);
            }
            '?' if !in_string => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().filter(|d| d.is_ascii_digit()) {
                    digits.push(*d);
                    chars.next();
                }
                let n = digits.parse().unwrap_or(highest + 1);
                highest = highest.max(n);
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// An argument converted from rusqlite's value, encoded for whatever type PostgreSQL inferred.
#[derive(Debug)]
enum PgArg {
    Null,
    Int(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

fn pg_args(args: &[&dyn ToSql]) -> Result<Vec<PgArg>> {
    args.iter()
        .map(|a| {
            let out = a.to_sql()?;
            let value = match &out {
                ToSqlOutput::Borrowed(v) => *v,
                ToSqlOutput::Owned(v) => v.into(),
                _ => return Err(DbError::Column(0, "unsupported argument kind".into())),
            };
            Ok(match value {
                ValueRef::Null => PgArg::Null,
                ValueRef::Integer(i) => PgArg::Int(i),
                ValueRef::Real(f) => PgArg::Real(f),
                ValueRef::Text(t) => PgArg::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => PgArg::Blob(b.to_vec()),
            })
        })
        .collect()
}

type BoxError = Box<dyn StdError + Sync + Send>;

impl tokio_postgres::types::ToSql for PgArg {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let mismatch = || -> BoxError { format!("cannot bind {self:?} to a {ty} parameter").into() };
        match (self, ty) {
            (PgArg::Null, _) => return Ok(IsNull::Yes),
            (PgArg::Int(i), &Type::INT8) => out.put_i64(*i),
            (PgArg::Int(i), &Type::INT4) => out.put_i32(i32::try_from(*i)?),
            (PgArg::Int(i), &Type::INT2) => out.put_i16(i16::try_from(*i)?),
            (PgArg::Int(i), &Type::FLOAT8) => out.put_f64(*i as f64),
            (PgArg::Int(i), &Type::BOOL) => out.put_u8(u8::from(*i != 0)),
            (PgArg::Real(f), &Type::FLOAT8) => out.put_f64(*f),
            (PgArg::Real(f), &Type::FLOAT4) => out.put_f32(*f as f32),
            (PgArg::Real(f), &Type::INT8) if f.fract() == 0.0 && f.abs() < 9.2e18 => out.put_i64(*f as i64),
            (PgArg::Text(s), t) if is_text(t) => out.put_slice(s.as_bytes()),
            (PgArg::Int(i), t) if is_text(t) => out.put_slice(i.to_string().as_bytes()),
            (PgArg::Real(f), t) if is_text(t) => out.put_slice(f.to_string().as_bytes()),
            (PgArg::Text(s), &Type::INT8) => out.put_i64(s.parse().map_err(|_| mismatch())?),
            (PgArg::Text(s), &Type::FLOAT8) => out.put_f64(s.parse().map_err(|_| mismatch())?),
            (PgArg::Blob(b), &Type::BYTEA) => out.put_slice(b),
            _ => return Err(mismatch()),
        }
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text(t: &Type) -> bool {
    matches!(*t, Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN)
}

/// The raw bytes of one column, of any type.
struct Raw<'a>(&'a [u8]);

impl<'a> tokio_postgres::types::FromSql<'a> for Raw<'a> {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw(raw))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

fn be<const N: usize>(raw: &[u8]) -> Option<[u8; N]> {
    raw.try_into().ok()
}

/// A PostgreSQL column as the SQLite value it stands for.
fn pg_value<'a>(row: &'a tokio_postgres::Row, i: usize) -> Result<ValueRef<'a>> {
    let bad = |what: &str| DbError::Column(i, format!("malformed {what} value"));
    let ty = row.columns().get(i).ok_or_else(|| DbError::Column(i, "no such column".into()))?.type_();
    let Some(Raw(raw)) = row.try_get::<_, Option<Raw>>(i)? else { return Ok(ValueRef::Null) };
    Ok(match *ty {
        Type::INT8 => ValueRef::Integer(i64::from_be_bytes(be(raw).ok_or_else(|| bad("int8"))?)),
        Type::INT4 => ValueRef::Integer(i32::from_be_bytes(be(raw).ok_or_else(|| bad("int4"))?).into()),
        Type::INT2 => ValueRef::Integer(i16::from_be_bytes(be(raw).ok_or_else(|| bad("int2"))?).into()),
        Type::BOOL => ValueRef::Integer(i64::from(raw.first().copied().unwrap_or(0) != 0)),
        Type::FLOAT8 => ValueRef::Real(f64::from_be_bytes(be(raw).ok_or_else(|| bad("float8"))?)),
        Type::FLOAT4 => ValueRef::Real(f32::from_be_bytes(be(raw).ok_or_else(|| bad("float4"))?).into()),
        Type::BYTEA => ValueRef::Blob(raw),
        ref t if is_text(t) => ValueRef::Text(raw),
        ref t => return Err(DbError::Column(i, format!("unsupported column type {t}"))),
    })
}

/// One connection inside the transaction of one request.
#[derive(Clone, Copy)]
pub enum Connection<'c> {
    Sqlite(&'c rusqlite::Connection),
    Postgres(&'c PgSession),
}

impl<'c> Connection<'c> {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Connection::Postgres(_))
    }

    /// Holds the lock on the object `kind`/`name` until the transaction ends, so concurrent
    /// requests on one object take turns and each reads what the previous one wrote. SQLite's
    /// single writer already takes turns; PostgreSQL takes a transaction-level advisory lock
    /// (which exists before the object does, so two creations of one name take turns too).
    ///
    /// On PostgreSQL a lock on anything replicas cache (everything but experiments) also
    /// announces the change on `slipway_changes_<schema>` (one channel per schema, as the
    /// tables are), delivered only if the transaction commits, so other replicas re-read it at
    /// once.
    pub fn lock(&self, kind: &str, name: &str) -> Result<()> {
        match self {
            Connection::Sqlite(_) => Ok(()),
            Connection::Postgres(_) if kind == "experiment" => self.query_row(
                "SELECT pg_advisory_xact_lock(hashtextextended(?1, 0))",
                [format!("{kind}/{name}")],
                |_| Ok(()),
            ),
            Connection::Postgres(_) => self.query_row(
                "SELECT pg_advisory_xact_lock(hashtextextended(?1, 0)), pg_notify(left('slipway_changes_' || current_schema(), 63), ?1)",
                [format!("{kind}/{name}")],
                |_| Ok(()),
            ),
        }
    }

    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    pub fn query_row<T>(&self, sql: &str, params: impl Params, f: impl FnOnce(&Row) -> Result<T>) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// A statement kept prepared for the connection's lifetime: for fixed SQL text.
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'c>> {
        Ok(match *self {
            Connection::Sqlite(c) => Statement::SqliteCached(c.prepare_cached(sql)?),
            Connection::Postgres(s) => Statement::Postgres(s, s.statement(sql, true)?),
        })
    }

    /// A statement prepared once: for SQL text built per request.
    pub fn prepare(&self, sql: &str) -> Result<Statement<'c>> {
        Ok(match *self {
            Connection::Sqlite(c) => Statement::Sqlite(c.prepare(sql)?),
            Connection::Postgres(s) => Statement::Postgres(s, s.statement(sql, false)?),
        })
    }
}

pub enum Statement<'c> {
    SqliteCached(rusqlite::CachedStatement<'c>),
    Sqlite(rusqlite::Statement<'c>),
    Postgres(&'c PgSession, tokio_postgres::Statement),
}

impl<'c> Statement<'c> {
    fn sqlite(&mut self) -> Option<&mut rusqlite::Statement<'c>> {
        match self {
            Statement::SqliteCached(s) => Some(s),
            Statement::Sqlite(s) => Some(s),
            Statement::Postgres(..) => None,
        }
    }

    pub fn execute(&mut self, params: impl Params) -> Result<usize> {
        let args = params.args();
        match self {
            Statement::Postgres(session, stmt) => session.execute(stmt, &args),
            other => match other.sqlite() {
                Some(s) => Ok(s.execute(rusqlite::params_from_iter(args))?),
                None => Err(DbError::NoRows),
            },
        }
    }

    pub fn query(&mut self, params: impl Params) -> Result<Rows<'_>> {
        let args = params.args();
        match self {
            Statement::Postgres(session, stmt) => Ok(Rows::Postgres(session.query(stmt, &args)?.into_iter(), None)),
            other => match other.sqlite() {
                Some(s) => Ok(Rows::Sqlite(s.query(rusqlite::params_from_iter(args))?)),
                None => Err(DbError::NoRows),
            },
        }
    }

    pub fn query_row<T>(&mut self, params: impl Params, f: impl FnOnce(&Row) -> Result<T>) -> Result<T> {
        let mut rows = self.query(params)?;
        match rows.next()? {
            Some(r) => f(&r),
            None => Err(DbError::NoRows),
        }
    }

    /// Every row, mapped by `f`.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        mut f: impl FnMut(&Row) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let mut rows = self.query(params)?;
        let mut out = Vec::new();
        while let Some(r) = rows.next()?.as_ref() {
            out.push(f(r));
        }
        Ok(out.into_iter())
    }
}

/// A cursor over a query's rows.
pub enum Rows<'s> {
    Sqlite(rusqlite::Rows<'s>),
    Postgres(std::vec::IntoIter<tokio_postgres::Row>, Option<tokio_postgres::Row>),
}

impl Rows<'_> {
    /// The next row; not an `Iterator`, because each row borrows the cursor (as in rusqlite).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        match self {
            Rows::Sqlite(rows) => Ok(rows.next()?.map(Row::Sqlite)),
            Rows::Postgres(rows, current) => {
                *current = rows.next();
                Ok(current.as_ref().map(Row::Postgres))
            }
        }
    }
}

/// An index into a row: a column number.
pub trait RowIndex {
    fn index(self) -> usize;
}

impl RowIndex for usize {
    fn index(self) -> usize {
        self
    }
}

pub enum Row<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r tokio_postgres::Row),
}

impl Row<'_> {
    pub fn get<I: RowIndex, T: FromSql>(&self, idx: I) -> Result<T> {
        let i = idx.index();
        match self {
            Row::Sqlite(r) => Ok(r.get(i)?),
            Row::Postgres(r) => T::column_result(pg_value(r, i)?).map_err(|e| match e {
                FromSqlError::InvalidType => DbError::Column(i, "unexpected type".into()),
                other => DbError::Column(i, other.to_string()),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::placeholders;

    #[test]
    fn placeholders_are_numbered_outside_strings() {
        assert_eq!(placeholders("a = ?1 AND b = ?2 OR c = ?1"), "a = $1 AND b = $2 OR c = $1");
        assert_eq!(placeholders("x IN (?, ?) LIMIT ?"), "x IN ($1, $2) LIMIT $3");
        assert_eq!(placeholders("s = '?' AND t = ?"), "s = '?' AND t = $1");
        assert_eq!(placeholders("a = ?3 AND b = ?"), "a = $3 AND b = $4");
    }
}
