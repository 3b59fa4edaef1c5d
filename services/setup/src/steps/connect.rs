//! Step 4: reach DocumentDB and Aurora with their credentials, before anything is written
//! anywhere (a wrong password stops the run with nothing changed).

use std::time::Duration;

use mongodb::error::ErrorKind;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::error::{Result, SetupError};
use crate::inputs::DatabaseTarget;
use crate::{Context, Databases, Outcome};

/// `(username, password)` from a managed master-user secret.
async fn credentials_from_secret(
    ctx: &Context,
    id: &str,
    what: &str,
) -> Result<(String, SecretString)> {
    let value = ctx.secrets.get(id).await?.ok_or_else(|| {
        SetupError::input(format!(
            "the {what} secret {id:?} does not exist in {}",
            ctx.secrets.describe()
        ))
    })?;
    let parsed: Value = serde_json::from_str(value.expose_secret()).map_err(|_| {
        SetupError::input(format!(
            "the {what} secret {id:?} is not JSON with \"username\" and \"password\""
        ))
    })?;
    match (parsed["username"].as_str(), parsed["password"].as_str()) {
        (Some(u), Some(p)) => Ok((u.to_owned(), SecretString::from(p.to_owned()))),
        _ => Err(SetupError::input(format!(
            "the {what} secret {id:?} lacks \"username\" or \"password\""
        ))),
    }
}

/// Percent-encodes a URL userinfo part.
fn userinfo(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

/// Connects to the databases the selected steps use and checks the credentials.
pub async fn databases(ctx: &Context, db: &mut Databases) -> Result<Outcome> {
    let mut notes = Vec::new();
    if let Some(target) = ctx.inputs.documentdb.clone() {
        let url = match target {
            DatabaseTarget::Url(u) => u,
            DatabaseTarget::Endpoint {
                endpoint,
                secret_id,
            } => {
                let (user, password) =
                    credentials_from_secret(ctx, &secret_id, "DocumentDB").await?;
                // DocumentDB: TLS with certificates from the RDS CA (not in the usual trust
                // stores: give its bundle), replica set rs0, no retryable writes.
                let tls = match (&ctx.inputs.documentdb_ca_file, ctx.inputs.database_tls) {
                    (_, false) => String::new(),
                    (None, true) => "&tls=true".to_owned(),
                    (Some(ca), true) => {
                        format!(
                            "&tls=true&tlsCAFile={}",
                            userinfo(&ca.display().to_string())
                        )
                    }
                };
                SecretString::from(format!(
                    "mongodb://{}:{}@{endpoint}/?replicaSet=rs0&retryWrites=false&readPreference=primary{tls}",
                    userinfo(&user),
                    userinfo(password.expose_secret())
                ))
            }
        };
        db.mongo = Some(connect_mongo(&url, &ctx.inputs.documentdb_database).await?);
        db.mongo_url = Some(url);
        notes.push(format!(
            "DocumentDB database {}",
            ctx.inputs.documentdb_database
        ));
    }
    if let Some(target) = ctx.inputs.aurora.clone() {
        let pool = match target {
            DatabaseTarget::Url(u) => connect_postgres(u.expose_secret().parse(), None).await?,
            DatabaseTarget::Endpoint {
                endpoint,
                secret_id,
            } => {
                let (user, password) = credentials_from_secret(ctx, &secret_id, "Aurora").await?;
                let url = format!(
                    "postgres://{}@{endpoint}/{}?sslmode={}",
                    userinfo(&user),
                    ctx.inputs.aurora_database,
                    if ctx.inputs.database_tls {
                        "require"
                    } else {
                        "disable"
                    }
                );
                connect_postgres(url.parse(), Some(password)).await?
            }
        };
        db.postgres = Some(pool);
        notes.push("Aurora PostgreSQL".to_owned());
    }
    Ok(Outcome::note(if notes.is_empty() {
        "no database needed by the selected steps".to_owned()
    } else {
        format!("connected: {}", notes.join(", "))
    }))
}

async fn connect_mongo(url: &SecretString, database: &str) -> Result<mongodb::Database> {
    let mut options = mongodb::options::ClientOptions::parse(url.expose_secret())
        .await
        .map_err(|e| SetupError::input(format!("the DocumentDB URL is not valid: {}", e.kind)))?;
    options.app_name = Some("mcpgw-setup".to_owned());
    options.server_selection_timeout = Some(Duration::from_secs(15));
    options.connect_timeout = Some(Duration::from_secs(5));
    let client = mongodb::Client::with_options(options)
        .map_err(|e| SetupError::input(format!("the DocumentDB URL is not usable: {}", e.kind)))?;
    let db = client.database(database);
    db.run_command(mongodb::bson::doc! {"ping": 1})
        .await
        .map_err(|e| classify_mongo("connecting to DocumentDB", &e))?;
    Ok(db)
}

/// Sorts a MongoDB driver error into a failure class.
pub fn classify_mongo(what: &str, e: &mongodb::error::Error) -> SetupError {
    match e.kind.as_ref() {
        ErrorKind::Authentication { message, .. } => SetupError::credentials(format!(
            "{what}: the credentials were refused ({message})"
        ))
        .with_hint("check the user and password in the DocumentDB secret"),
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. } => {
            SetupError::unreachable(format!("{what}: {e}")).with_hint(
                "check that this runs inside the VPC (or through a tunnel) and that the security group admits it",
            )
        }
        ErrorKind::Command(c) if c.code == 13 || c.code == 18 => SetupError::credentials(format!(
            "{what}: not authorized ({})",
            c.message
        )),
        _ => SetupError::apply(format!("{what}: {e}")),
    }
}

async fn connect_postgres(
    options: std::result::Result<sqlx::postgres::PgConnectOptions, sqlx::Error>,
    password: Option<SecretString>,
) -> Result<sqlx::PgPool> {
    let mut options =
        options.map_err(|e| SetupError::input(format!("the PostgreSQL URL is not valid: {e}")))?;
    if let Some(p) = password {
        options = options.password(p.expose_secret());
    }
    options = options.application_name("mcpgw-setup");
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(Duration::from_secs(15))
        .connect_with(options)
        .await
        .map_err(|e| classify_postgres("connecting to Aurora PostgreSQL", &e))
}

/// Sorts a sqlx error into a failure class.
pub fn classify_postgres(what: &str, e: &sqlx::Error) -> SetupError {
    match e {
        sqlx::Error::Database(d) if matches!(d.code().as_deref(), Some("28P01" | "28000")) => {
            SetupError::credentials(format!("{what}: the credentials were refused ({})", d.message()))
                .with_hint("check the user and password in the Aurora secret")
        }
        sqlx::Error::Database(d) if d.code().as_deref() == Some("3D000") => SetupError::input(
            format!("{what}: {} (create it, or give the right aurora_database)", d.message()),
        ),
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
            SetupError::unreachable(format!("{what}: {e}")).with_hint(
                "check that this runs inside the VPC (or through a tunnel) and that the security group admits it",
            )
        }
        _ => SetupError::apply(format!("{what}: {e}")),
    }
}
