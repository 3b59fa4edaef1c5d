//! Step 1: check the inputs and the spec, and build the context. No network.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Result, SetupError};
use crate::inputs::{Inputs, missing};
use crate::secrets::{AwsSecrets, DirSecrets, SecretStore};
use crate::spec::{DEFAULT_SPEC, Spec};
use crate::{Context, Options, Step};

pub async fn run(options: Options, chosen: &[Step]) -> Result<(Context, String)> {
    let inputs = Inputs::resolve(&options.raw, options.overrides)?;
    let has = |s: Step| chosen.contains(&s);
    let (text, origin) = options.spec.unwrap_or_else(|| {
        (
            DEFAULT_SPEC.to_owned(),
            "(built-in spec/mcpgw.toml)".to_owned(),
        )
    });
    let spec = Spec::load(&text, &origin, &inputs, has(Step::Realm))?;

    // What the selected steps need, asked for all at once before anything runs.
    if has(Step::Keycloak) || has(Step::Validate) {
        inputs.keycloak_url.as_ref().ok_or_else(|| {
            missing(
                "keycloak_url",
                if has(Step::Keycloak) {
                    "keycloak"
                } else {
                    "validate"
                },
            )
        })?;
    }
    if has(Step::Keycloak) && inputs.keycloak_admin.is_none() {
        return Err(SetupError::input("the Keycloak admin credentials are missing: the keycloak step needs them")
            .with_hint("give --keycloak-admin-password (or MCPGW_SETUP_KEYCLOAK_ADMIN_PASSWORD), or the Terraform output keycloak_admin_secret_id"));
    }
    if has(Step::Documentdb) || has(Step::Scopes) {
        if inputs.documentdb.is_none() {
            return Err(SetupError::input("the DocumentDB connection is missing: the documentdb and scopes steps need it")
                .with_hint("give --mongodb-url (or MCPGW_SETUP_MONGODB_URL), or the Terraform outputs documentdb_endpoint and documentdb_secret_id; or --skip documentdb,scopes"));
        }
    }
    if has(Step::Migrations) && inputs.aurora.is_none() {
        return Err(SetupError::input("the Aurora PostgreSQL connection is missing: the migrations step needs it")
            .with_hint("give --postgres-url (or MCPGW_SETUP_POSTGRES_URL), or the Terraform outputs aurora_endpoint and aurora_secret_id; or --skip migrations"));
    }
    if has(Step::Validate) {
        inputs
            .gateway_url
            .as_ref()
            .ok_or_else(|| missing("gateway_url", "validate"))?;
        if spec.validate.is_none() {
            return Err(SetupError::input(
                "the realm spec has no [validate] client_id: the validate step needs an m2m client",
            )
            .with_hint(
                "add [validate] client_id = \"<m2m client>\" to the spec, or --skip validate",
            ));
        }
    }

    let secrets: Arc<dyn SecretStore> = match &options.secrets_dir {
        Some(dir) => Arc::new(DirSecrets::new(dir)),
        None => Arc::new(
            AwsSecrets::new(
                inputs.aws_region.as_deref(),
                options.aws_endpoint_url.as_deref(),
            )
            .await,
        ),
    };
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .user_agent(concat!("mcpgw-setup/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| SetupError::internal(format!("building the HTTP client: {e}")))?;

    let note = format!(
        "{} inputs, environment {}; spec {origin}: realm {}, {} client scopes, {} groups, {} clients, {} dev users, {} scope documents; secrets in {}",
        options.raw.values.len(),
        inputs.environment.as_str(),
        spec.realm.name,
        spec.client_scopes.len(),
        spec.groups.len(),
        spec.clients.len(),
        spec.dev_users.len(),
        spec.scope_documents.len(),
        secrets.describe()
    );
    Ok((
        Context {
            inputs,
            spec,
            dry_run: options.dry_run,
            out: options.out,
            http,
            secrets,
            keycloak: None,
            mongo: None,
            mongo_url: None,
            postgres: None,
        },
        note,
    ))
}
