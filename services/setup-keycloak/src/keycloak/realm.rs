//! Reconciles the realm with the spec. Every object the spec names is created when missing
//! and repaired when a field this program manages differs; everything else in the realm
//! (Keycloak's built-in scopes and mappers, other clients, other users) is left alone. A dry
//! run makes the same comparisons and writes nothing; what is missing under an object that
//! exists only in the plan is planned without asking Keycloak.

use std::collections::{BTreeMap, BTreeSet};

use mcpgw_core::plan::Change;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value, json};

use super::{Admin, Created};
use crate::Context;
use crate::error::{Result, SetupError};
use crate::inputs::Environment;
use crate::spec::{ClientKind, ClientSpec, MapperSpec, Spec, UserSpec};

/// Ensures every object of the spec's realm; in a dry run, only plans.
pub async fn ensure(ctx: &Context) -> Result<Vec<Change>> {
    let admin = ctx.keycloak.as_ref().ok_or_else(|| {
        SetupError::internal("the keycloak step signs in before the realm step runs")
    })?;
    // Read before the first write, so that a missing secret changes nothing.
    let secrets = Secrets::read(ctx).await?;
    let mut r = Reconciler {
        ctx,
        admin,
        realm: format!("/{}", ctx.spec.realm.name),
        realm_planned: false,
        changes: Vec::new(),
    };
    r.realm().await?;
    let scopes = r.client_scopes().await?;
    let groups = r.groups().await?;
    let clients = r.clients(&secrets).await?;
    for c in &clients {
        r.mappers(c).await?;
    }
    for c in &clients {
        r.scope_links(c, &scopes).await?;
    }
    for c in &clients {
        r.service_account(c, &groups).await?;
    }
    for c in &clients {
        r.secret(c, &secrets).await?;
    }
    r.dev_users(&groups, &secrets).await?;
    Ok(r.changes)
}

/// Ids of objects by name; `None` for one that exists only in the plan (dry run).
type Ids = BTreeMap<String, Option<String>>;

/// The generated secrets the realm uses (the secrets step stores them before this step).
struct Secrets {
    clients: BTreeMap<String, SecretString>,
    users: BTreeMap<String, SecretString>,
}

impl Secrets {
    /// Reads every client secret and (dev only) dev user's password. Outside a dry run a
    /// missing one is an error: Keycloak must be given the stored value, not a new one.
    async fn read(ctx: &Context) -> Result<Self> {
        let prefix = &ctx.inputs.secret_prefix;
        let clients = ctx.spec.clients.iter().map(|c| {
            let id = Spec::client_secret_id(prefix, &c.client_id);
            (c.client_id.clone(), id)
        });
        let users = ctx
            .spec
            .dev_users
            .iter()
            .filter(|_| ctx.inputs.environment == Environment::Dev)
            .map(|u| {
                let id = Spec::user_password_id(prefix, &u.username);
                (u.username.clone(), id)
            });
        let mut missing = Vec::new();
        let secrets = Self {
            clients: read_existing(ctx, clients, &mut missing).await?,
            users: read_existing(ctx, users, &mut missing).await?,
        };
        if !missing.is_empty() && !ctx.dry_run {
            return Err(SetupError::input(format!(
                "the secrets {} do not exist in {}; the realm step gives Keycloak the stored values and does not make them up",
                missing.join(", "),
                ctx.secrets.describe()
            ))
            .with_hint("run the secrets step first (it generates missing secrets): run all steps, or --only secrets,realm"));
        }
        Ok(secrets)
    }
}

/// The secrets (name → secret id) that exist, by name; the ids of the others go to `missing`.
async fn read_existing(
    ctx: &Context,
    ids: impl Iterator<Item = (String, String)>,
    missing: &mut Vec<String>,
) -> Result<BTreeMap<String, SecretString>> {
    let mut found = BTreeMap::new();
    for (name, id) in ids {
        match ctx.secrets.get(&id).await? {
            Some(value) => {
                found.insert(name, value);
            }
            None => missing.push(id),
        }
    }
    Ok(found)
}

/// A client of the spec as this run left it.
struct ClientState<'s> {
    spec: &'s ClientSpec,
    /// Created (or planned) by this run with its secret, or found.
    ensured: Ensured,
}

/// An object of the spec as this run left it.
struct Ensured {
    /// Keycloak's id; `None` when the object exists only in the plan.
    id: Option<String>,
    created: bool,
}

/// A named object in one of the realm's lists.
struct Item {
    /// How the change names it (`client mcpgw-web`).
    object: String,
    /// The list the object is in and is created in (POST); the object itself is at
    /// `{collection}/{id}`. `None` when the parent exists only in the plan.
    collection: Option<String>,
    /// Narrows the list to the object (`?clientId=…`); empty for short lists.
    query: String,
    /// The field that names the object, and its value.
    key: &'static str,
    name: String,
    /// The fields this program manages, as Keycloak represents them.
    wanted: Value,
    /// Sent at creation only, never compared or printed (a secret, a password).
    at_creation: Map<String, Value>,
    /// Fields that Keycloak does not change in place: when one differs, the object is
    /// deleted and created again.
    replace_if: &'static [&'static str],
}

struct Reconciler<'a> {
    ctx: &'a Context,
    admin: &'a Admin,
    /// `/{realm}`: the admin API paths of the realm's objects start with it.
    realm: String,
    /// The realm does not exist and this dry run only plans it: nothing under it is read.
    realm_planned: bool,
    changes: Vec<Change>,
}

impl<'a> Reconciler<'a> {
    /// A path under the realm; `None` when the realm exists only in the plan.
    fn under_realm(&self, path: &str) -> Option<String> {
        (!self.realm_planned).then(|| format!("{}{path}", self.realm))
    }

    /// Records the outcome of a comparison: unchanged, or updated with the fields that differed.
    fn compared(&mut self, object: String, fields: &[String]) {
        self.changes.push(if fields.is_empty() {
            Change::unchanged(object)
        } else {
            Change::update(object, fields.join(", "))
        });
    }

    /// The realm: created with its settings, or its display name, `enabled` and settings
    /// repaired by a PUT of the differing fields only.
    async fn realm(&mut self) -> Result<()> {
        let spec = &self.ctx.spec.realm;
        let object = format!("realm {}", spec.name);
        let mut wanted = Map::new();
        wanted.insert("realm".into(), json!(spec.name));
        wanted.insert("enabled".into(), json!(true));
        if let Some(d) = &spec.display_name {
            wanted.insert("displayName".into(), json!(d));
        }
        wanted.extend(spec.settings.clone());
        let wanted = Value::Object(wanted);
        let have = match self.admin.get(&self.realm).await? {
            Some(have) => have,
            None if self.ctx.dry_run => {
                self.realm_planned = true;
                self.changes.push(Change::create(object));
                return Ok(());
            }
            None => match self.admin.create("", &wanted).await? {
                Created::New(_) => {
                    self.changes.push(Change::create(object));
                    return Ok(());
                }
                Created::Exists => self.admin.get(&self.realm).await?.ok_or_else(|| {
                    SetupError::apply(format!(
                        "Keycloak said {object} exists, but does not show it"
                    ))
                })?,
            },
        };
        let mut fields = Vec::new();
        let mut update = Map::new();
        for (key, value) in wanted.as_object().into_iter().flatten() {
            let current = have.get(key).unwrap_or(&Value::Null);
            if !same(value, current) {
                fields.push(key.clone());
                update.insert(key.clone(), merged(current, value));
            }
        }
        if !fields.is_empty() && !self.ctx.dry_run {
            // Keycloak's realm PUT changes only the fields it is given.
            self.admin
                .put(&self.realm, Some(&Value::Object(update)))
                .await?;
        }
        self.compared(object, &fields);
        Ok(())
    }

    async fn client_scopes(&mut self) -> Result<Ids> {
        let mut ids = Ids::new();
        for s in &self.ctx.spec.client_scopes {
            let ensured = self
                .ensure_item(Item {
                    object: format!("client scope {}", s.name),
                    collection: self.under_realm("/client-scopes"),
                    query: String::new(),
                    key: "name",
                    name: s.name.clone(),
                    wanted: json!({
                        "name": s.name,
                        "protocol": "openid-connect",
                        "description": s.description,
                        "attributes": {
                            // The scope's name in the token's `scope` claim is what the
                            // registry's scope documents match.
                            "include.in.token.scope": "true",
                            "display.on.consent.screen": "false",
                        },
                    }),
                    at_creation: Map::new(),
                    replace_if: &[],
                })
                .await?;
            ids.insert(s.name.clone(), ensured.id);
        }
        Ok(ids)
    }

    /// Top-level groups.
    async fn groups(&mut self) -> Result<Ids> {
        let mut ids = Ids::new();
        for g in &self.ctx.spec.groups {
            let ensured = self
                .ensure_item(Item {
                    object: format!("group {}", g.name),
                    collection: self.under_realm("/groups"),
                    // The answer holds top-level groups only (those with a matching subgroup
                    // too, under another name), so matching the name finds the top-level one.
                    query: format!("?search={}&exact=true", encode(&g.name)),
                    key: "name",
                    name: g.name.clone(),
                    wanted: json!({ "name": g.name }),
                    at_creation: Map::new(),
                    replace_if: &[],
                })
                .await?;
            ids.insert(g.name.clone(), ensured.id);
        }
        Ok(ids)
    }

    /// Confidential clients, created with their stored secret (the secret of an existing
    /// client is compared last, by [`Self::secret`]).
    async fn clients(&mut self, secrets: &Secrets) -> Result<Vec<ClientState<'a>>> {
        let ctx: &'a Context = self.ctx;
        let mut states = Vec::new();
        for c in &ctx.spec.clients {
            let mut at_creation = Map::new();
            if let Some(secret) = secrets.clients.get(&c.client_id) {
                at_creation.insert("secret".into(), json!(secret.expose_secret()));
            }
            let ensured = self
                .ensure_item(Item {
                    object: format!("client {}", c.client_id),
                    collection: self.under_realm("/clients"),
                    query: format!("?clientId={}", encode(&c.client_id)),
                    key: "clientId",
                    name: c.client_id.clone(),
                    wanted: client_representation(c),
                    at_creation,
                    replace_if: &[],
                })
                .await?;
            states.push(ClientState { spec: c, ensured });
        }
        Ok(states)
    }

    /// A client's protocol mappers, by name.
    async fn mappers(&mut self, c: &ClientState<'_>) -> Result<()> {
        for m in &c.spec.mappers {
            self.ensure_item(Item {
                object: format!("mapper {} on client {}", m.name(), c.spec.client_id),
                collection: self.under_client(c, "/protocol-mappers/models"),
                query: String::new(),
                key: "name",
                name: m.name().to_owned(),
                wanted: mapper_representation(m),
                at_creation: Map::new(),
                // Keycloak keeps a mapper's type once it is made.
                replace_if: &["protocolMapper"],
            })
            .await?;
        }
        Ok(())
    }

    /// Attaches the spec's default and optional client scopes; Keycloak's built-in ones stay.
    async fn scope_links(&mut self, c: &ClientState<'_>, scopes: &Ids) -> Result<()> {
        let kinds = [
            ("default", "default-client-scopes", &c.spec.default_scopes),
            (
                "optional",
                "optional-client-scopes",
                &c.spec.optional_scopes,
            ),
        ];
        for (label, list, names) in kinds {
            for s in names {
                let object = format!("{label} scope {s} of client {}", c.spec.client_id);
                let add = c
                    .ensured
                    .id
                    .as_ref()
                    .zip(id_of(scopes, s))
                    .map(|(id, scope)| format!("{}/clients/{id}/{list}/{scope}", self.realm));
                self.ensure_link(object, self.under_client(c, &format!("/{list}")), s, add)
                    .await?;
            }
        }
        Ok(())
    }

    /// The groups of an m2m client's service account.
    async fn service_account(&mut self, c: &ClientState<'_>, groups: &Ids) -> Result<()> {
        if c.spec.service_account_groups.is_empty() {
            return Ok(());
        }
        let user = match &c.ensured.id {
            Some(id) => self.service_account_user(&c.spec.client_id, id).await?,
            None => None,
        };
        for g in &c.spec.service_account_groups {
            let object = format!(
                "service account of client {} in group {g}",
                c.spec.client_id
            );
            self.user_in_group(object, user.as_ref(), g, groups).await?;
        }
        Ok(())
    }

    /// The id of a client's service account user; in a dry run `None` when the client has
    /// none yet (its update, only planned, would enable it).
    async fn service_account_user(&self, client_id: &str, id: &str) -> Result<Option<String>> {
        let path = format!("{}/clients/{id}/service-account-user", self.realm);
        let (status, _, body) = self.admin.send(reqwest::Method::GET, &path, None).await?;
        match body["id"].as_str() {
            Some(user) if status.is_success() => Ok(Some(user.to_owned())),
            _ if self.ctx.dry_run => Ok(None),
            _ => Err(SetupError::apply(format!(
                "Keycloak shows no service account for client {client_id} ({status}: {body})"
            ))
            .with_hint("check the client's \"Service accounts roles\" setting in Keycloak; running again repairs it")),
        }
    }

    /// A client's secret: the stored value, set by a PUT of the client when Keycloak's differs.
    async fn secret(&mut self, c: &ClientState<'_>, secrets: &Secrets) -> Result<()> {
        let object = format!("secret of client {}", c.spec.client_id);
        let Some(stored) = secrets.clients.get(&c.spec.client_id) else {
            // Only in a dry run (checked by `Secrets::read`): the secrets step plans it.
            self.changes
                .push(Change::update(object, "secret not generated yet"));
            return Ok(());
        };
        let (false, Some(id)) = (c.ensured.created, &c.ensured.id) else {
            // Created (or planned) with the stored secret.
            self.changes.push(Change::create(object));
            return Ok(());
        };
        let path = format!("{}/clients/{id}", self.realm);
        let current = self.admin.get(&format!("{path}/client-secret")).await?;
        let value = current.as_ref().and_then(|v| v["value"].as_str());
        if value == Some(stored.expose_secret()) {
            self.changes.push(Change::unchanged(object));
            return Ok(());
        }
        if !self.ctx.dry_run {
            let mut client = self.admin.get(&path).await?.ok_or_else(|| {
                SetupError::apply(format!(
                    "client {} disappeared from Keycloak",
                    c.spec.client_id
                ))
                .with_hint("run again; it creates the client")
            })?;
            client["secret"] = json!(stored.expose_secret());
            self.admin.put(&path, Some(&client)).await?;
        }
        self.changes
            .push(Change::update(object, "differs from the stored secret"));
        Ok(())
    }

    /// Users with known passwords (dev only), and their groups. The password is set at
    /// creation only: Keycloak does not show it to compare.
    async fn dev_users(&mut self, groups: &Ids, secrets: &Secrets) -> Result<()> {
        let ctx: &'a Context = self.ctx;
        for u in &ctx.spec.dev_users {
            let object = format!("dev user {}", u.username);
            if ctx.inputs.environment != Environment::Dev {
                self.changes
                    .push(Change::skipped(object, "environment is prod"));
                continue;
            }
            let mut at_creation = Map::new();
            if let Some(password) = secrets.users.get(&u.username) {
                at_creation.insert(
                    "credentials".into(),
                    json!([{ "type": "password", "value": password.expose_secret(), "temporary": false }]),
                );
            }
            let user = self
                .ensure_item(Item {
                    object,
                    collection: self.under_realm("/users"),
                    query: format!("?username={}&exact=true", encode(&u.username)),
                    key: "username",
                    name: u.username.clone(),
                    wanted: user_representation(u),
                    at_creation,
                    replace_if: &[],
                })
                .await?;
            for g in &u.groups {
                let object = format!("dev user {} in group {g}", u.username);
                self.user_in_group(object, user.id.as_ref(), g, groups)
                    .await?;
            }
        }
        Ok(())
    }

    /// A user's membership of a group; `user` is `None` when the user exists only in the plan.
    async fn user_in_group(
        &mut self,
        object: String,
        user: Option<&String>,
        group: &str,
        groups: &Ids,
    ) -> Result<()> {
        let list =
            user.map(|u| format!("{}/users/{u}/groups?search={}", self.realm, encode(group)));
        let add = user
            .zip(id_of(groups, group))
            .map(|(u, g)| format!("{}/users/{u}/groups/{g}", self.realm));
        self.ensure_link(object, list, group, add).await
    }

    /// A path under a client; `None` when the client exists only in the plan.
    fn under_client(&self, c: &ClientState<'_>, path: &str) -> Option<String> {
        c.ensured
            .id
            .as_ref()
            .map(|id| format!("{}/clients/{id}{path}", self.realm))
    }

    /// An object another run created while this one tried to: Keycloak answers the create
    /// with 409 as soon as the other transaction holds the name, which may be a moment before
    /// that transaction commits and the object is listed; so look a few times.
    async fn find_created_elsewhere(&self, collection: &str, item: &Item) -> Result<Value> {
        for attempt in 0..10 {
            if let Some(found) = self.find(collection, item).await? {
                return Ok(found);
            }
            tokio::time::sleep(std::time::Duration::from_millis(100 * (attempt + 1))).await;
        }
        Err(SetupError::apply(format!(
            "Keycloak said {} exists, but has not listed it within 5 s",
            item.object
        ))
        .with_hint("another run may be creating the realm at the same time; run again"))
    }

    /// Ensures a named object: found by name, created when missing, updated (a PUT of what
    /// Keycloak has, with the managed fields replaced) when a managed field differs.
    async fn ensure_item(&mut self, item: Item) -> Result<Ensured> {
        let Some(collection) = item.collection.clone() else {
            self.changes.push(Change::create(item.object));
            return Ok(Ensured {
                id: None,
                created: true,
            });
        };
        let have = match self.find(&collection, &item).await? {
            Some(have) => have,
            None => match self.create(&collection, &item).await? {
                Created::New(id) => {
                    self.changes.push(Change::create(item.object));
                    return Ok(Ensured { id, created: true });
                }
                // Made meanwhile by someone else: compared like any existing one.
                Created::Exists => self.find_created_elsewhere(&collection, &item).await?,
            },
        };
        let mut id = object_id(&have, &item.object)?;
        let fields = differing(&item.wanted, &have);
        if !fields.is_empty() && !self.ctx.dry_run {
            let path = format!("{collection}/{id}");
            if fields.iter().any(|f| item.replace_if.contains(&f.as_str())) {
                self.admin.delete(&path).await?;
                if let Created::New(Some(new)) = self.create(&collection, &item).await? {
                    id = new;
                }
            } else {
                self.admin
                    .put(&path, Some(&merged(&have, &item.wanted)))
                    .await?;
            }
        }
        self.compared(item.object, &fields);
        Ok(Ensured {
            id: Some(id),
            created: false,
        })
    }

    /// The object of `item` in its list, if it is there.
    async fn find(&self, collection: &str, item: &Item) -> Result<Option<Value>> {
        let list = self.list(&format!("{collection}{}", item.query)).await?;
        Ok(list
            .into_iter()
            .find(|v| v[item.key].as_str() == Some(item.name.as_str())))
    }

    /// Creates the object of `item`: its id, always known outside a dry run (which writes
    /// nothing and answers `New(None)`), or `Exists` when Keycloak says it exists already.
    async fn create(&self, collection: &str, item: &Item) -> Result<Created> {
        if self.ctx.dry_run {
            return Ok(Created::New(None));
        }
        let mut body = item.wanted.clone();
        if let Value::Object(fields) = &mut body {
            fields.extend(item.at_creation.clone());
        }
        let id = match self.admin.create(collection, &body).await? {
            Created::Exists => return Ok(Created::Exists),
            Created::New(Some(id)) => id,
            Created::New(None) => {
                let have = self.find(collection, item).await?.ok_or_else(|| {
                    SetupError::apply(format!(
                        "Keycloak created {}, but does not list it",
                        item.object
                    ))
                })?;
                object_id(&have, &item.object)?
            }
        };
        Ok(Created::New(Some(id)))
    }

    /// Ensures `name` is in the list at `list` (a membership, an attached scope), adding it
    /// by a PUT to `add`. `None` paths: the owner or the target exists only in the plan.
    async fn ensure_link(
        &mut self,
        object: String,
        list: Option<String>,
        name: &str,
        add: Option<String>,
    ) -> Result<()> {
        let present = match &list {
            Some(list) => self
                .list(list)
                .await?
                .iter()
                .any(|v| v["name"].as_str() == Some(name)),
            None => false,
        };
        let added = if present {
            false
        } else if self.ctx.dry_run {
            true
        } else {
            let add = add.ok_or_else(|| {
                SetupError::internal(format!("{object}: an id is unknown outside a dry run"))
            })?;
            // False when someone else added it meanwhile.
            self.admin.link(&add).await?
        };
        self.changes.push(if added {
            Change::create(object)
        } else {
            Change::unchanged(object)
        });
        Ok(())
    }

    /// A list from the admin API.
    async fn list(&self, path: &str) -> Result<Vec<Value>> {
        match self.admin.get(path).await? {
            Some(Value::Array(items)) => Ok(items),
            Some(other) => Err(SetupError::apply(format!(
                "Keycloak answered GET {path} with something that is not a list: {}",
                other.to_string().chars().take(200).collect::<String>()
            ))),
            None => Err(SetupError::apply(format!(
                "Keycloak answered GET {path} with 404: its owner disappeared during the run"
            ))
            .with_hint("run again")),
        }
    }
}

/// The id of an object of the spec; `None` when it exists only in the plan.
fn id_of<'i>(ids: &'i Ids, name: &str) -> Option<&'i String> {
    ids.get(name).and_then(Option::as_ref)
}

fn object_id(have: &Value, object: &str) -> Result<String> {
    have["id"].as_str().map(str::to_owned).ok_or_else(|| {
        SetupError::apply(format!("Keycloak's representation of {object} has no id"))
    })
}

/// Keycloak's representation of the fields of a client this program manages.
fn client_representation(c: &ClientSpec) -> Value {
    let mut rep = json!({
        "clientId": c.client_id,
        "name": c.name.as_deref().unwrap_or(&c.client_id),
        "protocol": "openid-connect",
        "enabled": true,
        "publicClient": false,
        "clientAuthenticatorType": "client-secret",
        "implicitFlowEnabled": false,
        // Off unless the spec asks (dev and test only: refused in prod by the inputs step).
        "directAccessGrantsEnabled": c.password_grant,
    });
    let kind = match c.kind {
        ClientKind::Web => json!({
            "standardFlowEnabled": true,
            "serviceAccountsEnabled": false,
            "redirectUris": c.redirect_uris,
            "webOrigins": c.web_origins,
            "attributes": {
                "pkce.code.challenge.method": "S256",
                "post.logout.redirect.uris": c.post_logout_redirect_uris.join("##"),
            },
        }),
        ClientKind::M2m => json!({
            "standardFlowEnabled": false,
            "serviceAccountsEnabled": true,
            "redirectUris": [],
            "webOrigins": [],
        }),
    };
    if let (Value::Object(rep), Value::Object(kind)) = (&mut rep, kind) {
        rep.extend(kind);
    }
    rep
}

fn mapper_representation(m: &MapperSpec) -> Value {
    let (kind, config) = m.keycloak();
    json!({
        "name": m.name(),
        "protocol": "openid-connect",
        "protocolMapper": kind,
        "config": config,
    })
}

fn user_representation(u: &UserSpec) -> Value {
    // Keycloak 26 refuses logins of users without email, first and last name.
    json!({
        "username": u.username,
        "enabled": true,
        "emailVerified": true,
        "email": u.email,
        "firstName": u.first_name,
        "lastName": u.last_name,
    })
}

/// The fields of `wanted` that `have` does not match: top-level names, and `field.key` for
/// the keys of an object field (attributes, config).
fn differing(wanted: &Value, have: &Value) -> Vec<String> {
    let mut fields = Vec::new();
    for (key, value) in wanted.as_object().into_iter().flatten() {
        let current = have.get(key).unwrap_or(&Value::Null);
        match value {
            Value::Object(inner) => {
                for (k, v) in inner {
                    if !same(v, current.get(k).unwrap_or(&Value::Null)) {
                        fields.push(format!("{key}.{k}"));
                    }
                }
            }
            _ if !same(value, current) => fields.push(key.clone()),
            _ => {}
        }
    }
    fields
}

/// Whether `have` holds what `wanted` says: objects compared on `wanted`'s keys only, arrays
/// as sets, and an empty string or array the same as an absent one (Keycloak drops them).
fn same(wanted: &Value, have: &Value) -> bool {
    match (wanted, have) {
        (Value::Object(w), _) => w
            .iter()
            .all(|(k, v)| same(v, have.get(k).unwrap_or(&Value::Null))),
        (Value::Array(w), Value::Array(h)) => as_set(w) == as_set(h),
        (Value::Array(w), Value::Null) => w.is_empty(),
        (Value::String(w), Value::Null) => w.is_empty(),
        (w, h) => w == h,
    }
}

fn as_set(values: &[Value]) -> BTreeSet<String> {
    values.iter().map(Value::to_string).collect()
}

/// `have` with `wanted`'s fields put in; objects are merged key by key, so fields of
/// Keycloak's that this program does not manage are sent back as they were.
fn merged(have: &Value, wanted: &Value) -> Value {
    match (have, wanted) {
        (Value::Object(h), Value::Object(w)) => {
            let mut out = h.clone();
            for (k, v) in w {
                out.insert(k.clone(), merged(h.get(k).unwrap_or(&Value::Null), v));
            }
            Value::Object(out)
        }
        (_, w) => w.clone(),
    }
}

/// A query parameter's value.
fn encode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}
