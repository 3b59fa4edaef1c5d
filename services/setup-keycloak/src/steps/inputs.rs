//! Step 1: check the inputs and the spec, and build the context. No network.

use std::sync::Arc;
use std::time::Duration;

use crate::error::{Result, SetupError};
use crate::inputs::{Environment, Inputs, missing};
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
    // The spec alone cannot tell: the same spec may serve dev and prod deployments.
    if inputs.environment == Environment::Prod
        && let Some(c) = spec.clients.iter().find(|c| c.password_grant)
    {
        return Err(SetupError::input(format!(
            "the realm spec {origin}: client {:?} has password_grant = true, which is for development and tests only and is refused when the environment is prod",
            c.client_id
        ))
        .with_hint("remove password_grant from the client (browser logins use a web client, machines client credentials), or set environment = dev if this deployment is for development"));
    }

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
    if (has(Step::Documentdb) || has(Step::Scopes) || has(Step::GatewayKey))
        && inputs.documentdb.is_none()
    {
        return Err(SetupError::input("the DocumentDB connection is missing: the documentdb, scopes and gateway-key steps need it")
                .with_hint("give --mongodb-url (or MCPGW_SETUP_MONGODB_URL), or the Terraform outputs documentdb_endpoint and documentdb_secret_id; or --skip documentdb,scopes,gateway-key"));
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
        },
        note,
    ))
}

#[cfg(test)]
mod tests {
    use crate::error::FailureClass;
    use crate::inputs::{Overrides, RawInputs, output};
    use crate::output::Output;
    use crate::{KeycloakOnly, Options, Step};

    /// A spec with one m2m client that asks for the password grant.
    const PASSWORD_GRANT_SPEC: &str = "[realm]\nname = \"t\"\n\n[[clients]]\nclient_id = \"m2m\"\nkind = \"m2m\"\npassword_grant = true\n";

    /// Runs the inputs step alone on `spec` in `environment`.
    async fn inputs(environment: &str, spec: &str) -> crate::Report {
        let mut raw = RawInputs::default();
        raw.set(output::ENVIRONMENT, Some(environment.to_owned()));
        crate::run(
            Options {
                raw,
                overrides: Overrides::default(),
                spec: Some((spec.to_owned(), "test.toml".to_owned())),
                // Not touched: the inputs step only names the directory.
                secrets_dir: Some("/nonexistent/secrets".into()),
                aws_endpoint_url: None,
                dry_run: false,
                only: vec![Step::Inputs],
                skip: vec![],
                out: Output::to_writer(Box::new(std::io::sink()), false),
            },
            &mut KeycloakOnly,
        )
        .await
    }

    #[tokio::test]
    async fn a_client_with_the_password_grant_is_refused_in_prod() {
        let report = inputs("prod", PASSWORD_GRANT_SPEC).await;
        let error = report.error.expect("prod refuses password_grant");
        assert_eq!(error.class, FailureClass::Input);
        assert!(
            error.message.contains("client \"m2m\" has password_grant"),
            "{error}"
        );
        assert!(error.hint.is_some(), "says what to do next");
    }

    #[tokio::test]
    async fn a_client_with_the_password_grant_is_accepted_in_dev() {
        let report = inputs("dev", PASSWORD_GRANT_SPEC).await;
        assert!(report.error.is_none(), "{:?}", report.error);
        let prod = inputs(
            "prod",
            &PASSWORD_GRANT_SPEC.replace("password_grant = true", ""),
        )
        .await;
        assert!(
            prod.error.is_none(),
            "without it prod is fine: {:?}",
            prod.error
        );
    }
}
