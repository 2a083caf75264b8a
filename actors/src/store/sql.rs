//! How a statement runs: every statement of the store goes through [`Sql`], on a pooled
//! connection or inside a transaction, with its parameters' types declared next to them.
//!
//! With prepared statements (`database.prepared_statements = true`, the default) a statement is
//! prepared by name once per connection (deadpool's statement cache) and then only bound and
//! executed. Without them (for PgBouncer in transaction mode, where a later transaction may run
//! on another server connection, or on one where another client's statement has the same name)
//! each statement is sent unnamed: Parse, Bind, Describe, Execute and Sync in one round trip,
//! nothing kept on the server after it. Either way the server infers no parameter type: the
//! types are the ones given here (see the column types in `sql/*.sql`).
//!
//! Nothing here keeps session state on a connection (no session `SET`, no session advisory lock,
//! no temporary table, no `LISTEN`: the hand-over listener has its own connection), so under
//! transaction pooling a statement may run on any server connection between transactions.

use deadpool_postgres::{ClientWrapper, StatementCache, Transaction};
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, Statement};

use super::StoreError;

/// A parameter and its PostgreSQL type.
pub(super) type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// Runs statements on one connection (a pooled client, or the connection of a transaction).
#[derive(Clone, Copy)]
pub(super) struct Sql<'c> {
    client: &'c Client,
    /// The connection's statement cache when statements are prepared by name.
    prepared: Option<&'c StatementCache>,
}

/// A statement made ready before it is sent: prepared (named), or its text and parameter
/// types (unnamed). A batch makes all its statements ready first, so that the statements then
/// leave in the order they are polled (see `writes::apply_batch`).
pub(super) enum Ready {
    Prepared(Statement),
    Unnamed(&'static str, &'static [Type]),
}

impl<'c> Sql<'c> {
    /// Statements on a pooled connection; `prepared`: `database.prepared_statements`.
    pub(super) fn on_client(client: &'c ClientWrapper, prepared: bool) -> Self {
        Sql {
            client,
            prepared: prepared.then_some(&*client.statement_cache),
        }
    }

    /// Statements inside a transaction (its connection's cache).
    pub(super) fn in_transaction(tx: &'c Transaction<'_>, prepared: bool) -> Self {
        Sql {
            client: tx.client(),
            prepared: prepared.then_some(&*tx.statement_cache),
        }
    }

    /// The named statement for `text`, prepared now unless this connection has it already.
    async fn prepare(
        &self,
        cache: &StatementCache,
        text: &str,
        params: &[Param<'_>],
    ) -> Result<Statement, StoreError> {
        let types: Vec<Type> = params.iter().map(|(_, ty)| ty.clone()).collect();
        Ok(cache.prepare_typed(self.client, text, &types).await?)
    }

    /// Every row.
    pub(super) async fn query(
        &self,
        text: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<Row>, StoreError> {
        Ok(match self.prepared {
            Some(cache) => {
                let statement = self.prepare(cache, text, params).await?;
                self.client.query(&statement, &values(params)).await?
            }
            None => self.client.query_typed(text, params).await?,
        })
    }

    /// At most one row (more is an error).
    pub(super) async fn query_opt(
        &self,
        text: &str,
        params: &[Param<'_>],
    ) -> Result<Option<Row>, StoreError> {
        Ok(match self.prepared {
            Some(cache) => {
                let statement = self.prepare(cache, text, params).await?;
                self.client.query_opt(&statement, &values(params)).await?
            }
            None => self.client.query_typed_opt(text, params).await?,
        })
    }

    /// Exactly one row.
    pub(super) async fn query_one(
        &self,
        text: &str,
        params: &[Param<'_>],
    ) -> Result<Row, StoreError> {
        Ok(match self.prepared {
            Some(cache) => {
                let statement = self.prepare(cache, text, params).await?;
                self.client.query_one(&statement, &values(params)).await?
            }
            None => self.client.query_typed_one(text, params).await?,
        })
    }

    /// The number of rows the statement changed.
    pub(super) async fn execute(
        &self,
        text: &str,
        params: &[Param<'_>],
    ) -> Result<u64, StoreError> {
        Ok(match self.prepared {
            Some(cache) => {
                let statement = self.prepare(cache, text, params).await?;
                self.client.execute(&statement, &values(params)).await?
            }
            None => self.client.execute_typed(text, params).await?,
        })
    }

    /// Statements without parameters through the simple query protocol (`BEGIN`, DDL): never
    /// prepared, fine under transaction pooling.
    pub(super) async fn batch_execute(&self, text: &str) -> Result<(), StoreError> {
        Ok(self.client.batch_execute(text).await?)
    }

    /// `text` made ready to run with parameters of `types`: prepared now (a round trip unless
    /// cached), or nothing to do without prepared statements.
    pub(super) async fn ready(
        &self,
        text: &'static str,
        types: &'static [Type],
    ) -> Result<Ready, StoreError> {
        Ok(match self.prepared {
            Some(cache) => Ready::Prepared(cache.prepare_typed(self.client, text, types).await?),
            None => Ready::Unnamed(text, types),
        })
    }

    /// Runs a statement made ready by [`Sql::ready`] with these values (in the order of its
    /// types). Its request leaves when the future is first polled.
    pub(super) async fn execute_ready(
        &self,
        ready: &Ready,
        values: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        Ok(match ready {
            Ready::Prepared(statement) => self.client.execute(statement, values).await?,
            Ready::Unnamed(text, types) => {
                if values.len() != types.len() {
                    return Err(StoreError::Query(format!(
                        "{} values for {} parameters",
                        values.len(),
                        types.len()
                    )));
                }
                let params: Vec<Param<'_>> = values
                    .iter()
                    .zip(types.iter())
                    .map(|(value, ty)| (*value, ty.clone()))
                    .collect();
                self.client.execute_typed(text, &params).await?
            }
        })
    }
}

fn values<'a>(params: &[Param<'a>]) -> Vec<&'a (dyn ToSql + Sync)> {
    params.iter().map(|(value, _)| *value).collect()
}
