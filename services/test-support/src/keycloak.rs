//! Keycloak realms for the services' integration tests (feature `keycloak`), made by the code
//! that sets up a deployment (`mcpgw-setup`'s Keycloak library, `mcpgw-setup-keycloak`), so the
//! tests see the realm a deployment gets: a test writes a short realm spec (the format of
//! `services/setup-keycloak/spec/mcpgw.toml`, see [`mcpgw_setup_keycloak::spec`]) and [`realm`]
//! runs the secrets and realm steps on it in the dev environment.
//!
//! Every call makes a new realm: the spec's `[realm] name` is a prefix, to which [`realm`]
//! appends `-` and 12 random hex digits (`gw` becomes `gw-3f9c0a1b2c4d`), so tests sharing a
//! Keycloak never meet. The prefix may be at most 51 characters. Client secrets and dev users'
//! passwords are generated, as in a deployment, into a temporary directory that the
//! [`FixtureRealm`] owns; read them with [`FixtureRealm::client_secret`] and
//! [`FixtureRealm::user_password`].

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use url::Url;

use mcpgw_setup_keycloak::error::{Result, SetupError};
use mcpgw_setup_keycloak::inputs::{Overrides, RawInputs, output};
use mcpgw_setup_keycloak::keycloak::{Admin, join};
use mcpgw_setup_keycloak::output::{Captured, Output};
use mcpgw_setup_keycloak::secrets::{DirSecrets, SecretStore};
use mcpgw_setup_keycloak::spec::Spec;
use mcpgw_setup_keycloak::{KeycloakOnly, Options, Step};

/// The secret prefix of fixture runs (the secrets are files under the fixture's directory).
const SECRET_PREFIX: &str = "fixture";

/// A realm made by [`realm`]. Dropping it removes its secrets directory but keeps the realm;
/// [`FixtureRealm::delete`] removes the realm too.
pub struct FixtureRealm {
    /// The realm's name: the spec's name with a unique suffix.
    pub name: String,
    keycloak_url: Url,
    admin_password: SecretString,
    secrets: DirSecrets,
    /// Holds the generated secrets that `secrets` reads; removed when the fixture is dropped.
    _dir: tempfile::TempDir,
}

/// Makes a new realm from `spec_toml` (its `[realm] name` gets a unique suffix) on the
/// Keycloak at `keycloak_url`, signing in as `admin` with `admin_password`. `auth_server_url`
/// fills `${auth_server_url}` in the spec; the other placeholders have no value here.
///
/// A failed run is an error of the run's class whose message ends with the run's output.
pub async fn realm(
    keycloak_url: &str,
    admin_password: &str,
    spec_toml: &str,
    auth_server_url: Option<&str>,
) -> Result<FixtureRealm> {
    let (name, spec) = with_unique_name(spec_toml)?;
    let dir = tempfile::tempdir().map_err(|e| {
        SetupError::apply(format!(
            "creating a temporary directory for the secrets of the fixture realm {name}: {e}"
        ))
    })?;
    let mut raw = RawInputs::default();
    raw.set(output::KEYCLOAK_URL, Some(keycloak_url.to_owned()));
    // Dev: the spec's dev users are created, and password_grant is allowed.
    raw.set(output::ENVIRONMENT, Some("dev".to_owned()));
    raw.set(output::SECRET_PREFIX, Some(SECRET_PREFIX.to_owned()));
    raw.set(output::AUTH_SERVER_URL, auth_server_url.map(str::to_owned));
    let admin_password = SecretString::from(admin_password.to_owned());
    let captured = Captured::default();
    let options = Options {
        raw,
        overrides: Overrides {
            keycloak_admin_password: Some(admin_password.clone()),
            // Test dependencies are started before the tests; a minute covers a slow start
            // without leaving a test hanging for the deployment default of five.
            wait_keycloak: Some(Duration::from_secs(60)),
            ..Overrides::default()
        },
        spec: Some((spec, format!("(fixture spec of realm {name})"))),
        secrets_dir: Some(dir.path().to_owned()),
        aws_endpoint_url: None,
        dry_run: false,
        only: vec![Step::Secrets, Step::Realm],
        skip: vec![],
        out: Output::to_writer(Box::new(captured.clone()), false),
    };
    let report = mcpgw_setup_keycloak::run(options, &mut KeycloakOnly).await;
    if let Some(e) = report.error {
        return Err(SetupError {
            class: e.class,
            message: format!(
                "making the fixture realm {name} failed: {}\nmcpgw-setup's output:\n{}",
                e.message,
                captured.text()
            ),
            hint: e.hint,
        });
    }
    let keycloak_url = Url::parse(keycloak_url).map_err(|e| {
        SetupError::internal(format!(
            "keycloak_url {keycloak_url:?} was accepted by the run but does not parse: {e}"
        ))
    })?;
    Ok(FixtureRealm {
        name,
        keycloak_url,
        admin_password,
        secrets: DirSecrets::new(dir.path()),
        _dir: dir,
    })
}

/// An environment variable the test Keycloak's setup exports; panics with what to run when
/// it is missing.
fn keycloak_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("{name} is not set: run the suite with `make test` (it starts Keycloak), or start it with `scripts/deps/keycloak.sh start` and export its URL and admin password")
    })
}

/// [`realm`] on the suite's Keycloak (`MCPGW_TEST_KEYCLOAK_URL`, signing in with
/// `MCPGW_TEST_KEYCLOAK_ADMIN_PASSWORD`); panics when the run fails, with its output.
pub async fn test_realm(spec_toml: &str, auth_server_url: Option<&str>) -> FixtureRealm {
    realm(
        &keycloak_env("MCPGW_TEST_KEYCLOAK_URL"),
        &keycloak_env("MCPGW_TEST_KEYCLOAK_ADMIN_PASSWORD"),
        spec_toml,
        auth_server_url,
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// The `access_token` a token endpoint (`token_url`, of Keycloak or another provider) answers
/// `form` with; panics with the answer when there is none.
pub async fn access_token(token_url: &str, form: &[(&str, &str)]) -> String {
    let r: serde_json::Value = reqwest::Client::new()
        .post(token_url)
        .form(form)
        .send()
        .await
        .unwrap_or_else(|e| panic!("POST {token_url}: {e}"))
        .json()
        .await
        .unwrap_or_else(|e| panic!("the answer of {token_url} is not JSON: {e}"));
    r["access_token"]
        .as_str()
        .unwrap_or_else(|| panic!("no access token from {token_url}: {r}"))
        .to_owned()
}

/// The spec's realm name with a unique suffix, and the spec with that name.
fn with_unique_name(spec_toml: &str) -> Result<(String, String)> {
    let bad = |what: String| {
        SetupError::input(format!("the fixture spec: {what}"))
            .with_hint("give a realm spec in the format of services/setup-keycloak/spec/mcpgw.toml")
    };
    let mut table: toml::Table = spec_toml
        .parse()
        .map_err(|e| bad(format!("not valid TOML: {e}")))?;
    let realm = table
        .get_mut("realm")
        .and_then(toml::Value::as_table_mut)
        .ok_or_else(|| bad("no [realm] table".to_owned()))?;
    let prefix = realm
        .get("name")
        .and_then(toml::Value::as_str)
        .ok_or_else(|| bad("[realm] has no name (the prefix of the realm's name)".to_owned()))?;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let name = format!("{prefix}-{}", &suffix[..12]);
    realm.insert("name".to_owned(), toml::Value::String(name.clone()));
    let text = toml::to_string(&table)
        .map_err(|e| SetupError::internal(format!("writing the fixture spec back: {e}")))?;
    Ok((name, text))
}

impl FixtureRealm {
    /// The realm's issuer, as Keycloak puts it in `iss` of tokens asked for at this URL.
    pub fn issuer(&self) -> String {
        join(&self.keycloak_url, &format!("realms/{}", self.name)).to_string()
    }

    /// The generated secret of the spec's client `client_id`.
    pub async fn client_secret(&self, client_id: &str) -> Result<String> {
        self.secret(&Spec::client_secret_id(SECRET_PREFIX, client_id), || {
            format!("client {client_id:?} (is it in the spec's [[clients]]?)")
        })
        .await
    }

    /// The generated password of the spec's dev user `username`.
    pub async fn user_password(&self, username: &str) -> Result<String> {
        self.secret(&Spec::user_password_id(SECRET_PREFIX, username), || {
            format!("dev user {username:?} (is it in the spec's [[dev_users]]?)")
        })
        .await
    }

    async fn secret(&self, id: &str, of: impl FnOnce() -> String) -> Result<String> {
        match self.secrets.get(id).await? {
            Some(value) => Ok(value.expose_secret().to_owned()),
            None => Err(SetupError::input(format!(
                "the fixture realm {} has no secret for the {}",
                self.name,
                of()
            ))),
        }
    }

    /// Deletes the realm from Keycloak (and, on drop, its secrets).
    pub async fn delete(self) -> Result<()> {
        let admin = Admin::sign_in(
            reqwest::Client::new(),
            &self.keycloak_url,
            "admin",
            self.admin_password.clone(),
        )
        .await?;
        admin.delete(&format!("/{}", self.name)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_realm_name_gets_a_unique_suffix_and_the_rest_is_kept() {
        let spec = "[realm]\nname = \"gw\"\n\n[[groups]]\nname = \"readers\"\n";
        let (a, text) = with_unique_name(spec).unwrap();
        let (b, _) = with_unique_name(spec).unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with("gw-") && a.len() == 15, "{a}");
        let table: toml::Table = text.parse().unwrap();
        assert_eq!(table["realm"]["name"].as_str(), Some(a.as_str()));
        assert_eq!(table["groups"][0]["name"].as_str(), Some("readers"));
    }

    #[test]
    fn a_spec_without_a_realm_name_is_refused() {
        for spec in ["[[groups]]\nname = \"x\"\n", "[realm]\n", "not toml ="] {
            let e = with_unique_name(spec).unwrap_err();
            assert!(e.message.starts_with("the fixture spec: "), "{e}");
        }
    }

    /// Bad input fails before any connection, so no Keycloak is needed at this address.
    #[tokio::test]
    async fn a_failed_run_is_reported_with_its_class_and_output() {
        let spec = "[realm]\nname = \"t\"\n\n[[clients]]\nclient_id = \"web\"\nkind = \"web\"\nredirect_uris = [\"${auth_server_url}/callback\"]\n";
        let Err(e) = realm("http://127.0.0.1:9", "unused", spec, None).await else {
            panic!("a spec naming ${{auth_server_url}} needs the URL");
        };
        assert_eq!(e.class, mcpgw_setup_keycloak::error::FailureClass::Input);
        assert!(e.message.starts_with("making the fixture realm t-"), "{e}");
        assert!(e.message.contains("auth_server_url is missing"), "{e}");
        assert!(
            e.message.contains("mcpgw-setup's output:\n")
                && e.message.contains("inputs      FAILED"),
            "the run's output is in the error: {e}"
        );
    }
}
