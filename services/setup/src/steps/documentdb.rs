//! Step 7: the registry's collections, validators and indexes in DocumentDB, as declared by the
//! registry itself (`registry::store::mongo_schema`), so this binary and the registry it ships
//! with never disagree about the schema.

use crate::error::{Result, SetupError};
use crate::steps::connect::classify_mongo;
use crate::{Context, Databases, Outcome};

pub async fn run(ctx: &Context, dbs: &mut Databases) -> Result<Outcome> {
    let db = dbs
        .mongo
        .as_ref()
        .ok_or_else(|| SetupError::internal("the databases step connects DocumentDB first"))?;
    let changes = registry::store::mongo_schema::ensure(db, ctx.dry_run)
        .await
        .map_err(|e| {
            classify_mongo(
                &format!("ensuring the registry schema in database {}", db.name()),
                &e,
            )
        })?;
    Ok(Outcome::changes(
        changes,
        format!("database {}", ctx.inputs.documentdb_database),
    ))
}
