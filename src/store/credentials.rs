//! Where S3 request credentials come from: the AWS default chain.
//!
//! The first source that applies wins (the order of the AWS SDKs):
//!
//! 1. **environment keys**: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`);
//! 2. **a shared profile**: `AWS_PROFILE` (default `default`) in `AWS_SHARED_CREDENTIALS_FILE`
//!    (default `~/.aws/credentials`, section `[NAME]`), then in `AWS_CONFIG_FILE` (default
//!    `~/.aws/config`, section `[profile NAME]`, or `[default]`); static keys only;
//! 3. **web identity**: `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN` (EKS IRSA);
//! 4. **container credentials**: `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` (ECS, AWS Batch) or
//!    `AWS_CONTAINER_CREDENTIALS_FULL_URI` + `AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE` (EKS Pod
//!    Identity);
//! 5. **instance metadata** (EC2 instance profile, IMDSv2; `AWS_METADATA_ENDPOINT` overrides the
//!    address; `AWS_EC2_METADATA_DISABLED=true` skips it), when a probe of at most
//!    [`PROBE_TIMEOUT`] gets credentials from it;
//! 6. **none**: requests are unsigned.
//!
//! Sources 3–5 are `object_store`'s own providers: `AmazonS3Builder::from_env` chooses the same
//! one when sources 1 and 2 are absent, and it refreshes their temporary credentials. This module
//! only tells which source applies, reads profiles (`object_store` has no profile support; the
//! INI syntax is parsed by the `configparser` crate, which has no dependencies) and probes the
//! metadata service. Credentials never reach a log line, an error message or a `Debug` string.

use std::path::{Path as FsPath, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AwsCredential};
use object_store::{ClientConfigKey, CredentialProvider, ObjectStoreExt, RetryConfig};

use crate::error::{Error, Result};

/// Longest the instance metadata probe may take.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Which source signs S3 requests.
#[derive(Clone)]
pub enum Source {
    /// `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` from the environment.
    Environment(Arc<AwsCredential>),
    /// Static keys of a shared profile.
    Profile {
        /// The profile name.
        name: String,
        /// The file that holds it.
        file: String,
        /// Its keys.
        credential: Arc<AwsCredential>,
    },
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` + `AWS_ROLE_ARN`.
    WebIdentity,
    /// ECS / EKS container credentials.
    Container,
    /// The EC2 instance metadata service.
    InstanceMetadata,
    /// No source: requests go out unsigned.
    None,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Environment(_) => write!(f, "environment (AWS_ACCESS_KEY_ID)"),
            Source::Profile { name, file, .. } => write!(f, "profile {name:?} in {file}"),
            Source::WebIdentity => write!(f, "web identity (AWS_WEB_IDENTITY_TOKEN_FILE)"),
            Source::Container => write!(f, "container credentials"),
            Source::InstanceMetadata => write!(f, "instance metadata (IMDSv2)"),
            Source::None => write!(f, "none"),
        }
    }
}

/// Names the source only; the keys are never shown.
impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Source({self})")
    }
}

impl Source {
    /// The provider to give the S3 builder, for the sources this module read keys for (the
    /// other sources are `object_store`'s own).
    pub fn provider(&self) -> Option<object_store::aws::AwsCredentialProvider> {
        match self {
            Source::Environment(c) | Source::Profile { credential: c, .. } => {
                Some(Arc::new(KeyProvider(c.clone())))
            }
            _ => None,
        }
    }
}

/// Static keys whose `Debug` shows nothing of them (`object_store`'s static provider shows the
/// access key id).
struct KeyProvider(Arc<AwsCredential>);

impl std::fmt::Debug for KeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyProvider(<redacted>)")
    }
}

#[async_trait::async_trait]
impl CredentialProvider for KeyProvider {
    type Credential = AwsCredential;

    async fn get_credential(&self) -> object_store::Result<Arc<AwsCredential>> {
        Ok(self.0.clone())
    }
}

/// Find the credential source the environment `env` describes (see the module docs).
pub async fn resolve(env: &(dyn Fn(&str) -> Option<String> + Sync)) -> Result<Source> {
    let set = |name: &str| env(name).is_some_and(|v| !v.is_empty());
    if set("AWS_ACCESS_KEY_ID") || set("AWS_SECRET_ACCESS_KEY") {
        let key = |name: &str| {
            env(name).filter(|v| !v.is_empty()).ok_or_else(|| {
                Error::Config(format!(
                    "{name} is not set but the other AWS environment key is; set both \
                     AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither"
                ))
            })
        };
        return Ok(Source::Environment(Arc::new(AwsCredential {
            key_id: key("AWS_ACCESS_KEY_ID")?,
            secret_key: key("AWS_SECRET_ACCESS_KEY")?,
            token: env("AWS_SESSION_TOKEN").filter(|v| !v.is_empty()),
        })));
    }
    if let Some(source) = profile(env).await? {
        return Ok(source);
    }
    if set("AWS_WEB_IDENTITY_TOKEN_FILE") && set("AWS_ROLE_ARN") {
        return Ok(Source::WebIdentity);
    }
    if set("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
        || (set("AWS_CONTAINER_CREDENTIALS_FULL_URI")
            && set("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"))
    {
        return Ok(Source::Container);
    }
    let disabled = env("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if !disabled && instance_metadata_answers(env("AWS_METADATA_ENDPOINT")).await {
        return Ok(Source::InstanceMetadata);
    }
    Ok(Source::None)
}

/// The static keys of the selected profile, `None` when no profile applies. A profile named by
/// `AWS_PROFILE` that does not exist, has only some of its keys or needs a provider we do not
/// have (role assumption, SSO, a credential process) is an error naming it and its file.
async fn profile(env: &(dyn Fn(&str) -> Option<String> + Sync)) -> Result<Option<Source>> {
    let named = env("AWS_PROFILE").filter(|v| !v.is_empty());
    let name = named.clone().unwrap_or_else(|| "default".to_string());
    let home = env("HOME")
        .or_else(|| env("USERPROFILE"))
        .filter(|h| !h.is_empty());
    let file = |var: &str, default: &str| -> Option<PathBuf> {
        match env(var).filter(|v| !v.is_empty()) {
            Some(path) => Some(expand_home(&path, home.as_deref())),
            None => home.as_deref().map(|h| FsPath::new(h).join(default)),
        }
    };
    let files = [
        (
            file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"),
            name.clone(),
        ),
        (
            file("AWS_CONFIG_FILE", ".aws/config"),
            if name == "default" {
                name.clone()
            } else {
                format!("profile {name}")
            },
        ),
    ];
    let mut read_any = Vec::new();
    let mut found = false;
    for (path, section) in files {
        let Some(path) = path else { continue };
        let shown = path.display().to_string();
        let Some(text) = read_local(&path).await? else {
            continue;
        };
        read_any.push(shown.clone());
        match profile_keys(&text, &section)
            .map_err(|reason| Error::Config(format!("AWS profile file {shown}: {reason}")))?
        {
            ProfileKeys::Missing => {}
            ProfileKeys::Keys(credential) => {
                return Ok(Some(Source::Profile {
                    name,
                    file: shown,
                    credential: Arc::new(credential),
                }));
            }
            ProfileKeys::Partial(missing) => {
                return Err(Error::Config(format!(
                    "AWS profile {name:?} in {shown} has no {missing}"
                )));
            }
            ProfileKeys::Unsupported(setting) if named.is_some() => {
                return Err(Error::Config(format!(
                    "AWS profile {name:?} in {shown} uses {setting}, which earthcatalog does not \
                     support; give the profile static keys, or use environment keys, web \
                     identity, container or instance credentials"
                )));
            }
            // A profile with settings only (often the default profile with a region): the
            // chain goes on.
            ProfileKeys::Unsupported(_) | ProfileKeys::NoKeys => found = true,
        }
    }
    // A profile named explicitly but absent from the profile files that exist is a typo (the
    // AWS CLI refuses it too); without any profile file the chain goes on.
    if named.is_some() && !found && !read_any.is_empty() {
        return Err(Error::Config(format!(
            "AWS_PROFILE={name:?}: no such profile in {}",
            read_any.join(" or ")
        )));
    }
    Ok(None)
}

/// What a profile section holds.
#[derive(Debug, PartialEq)]
enum ProfileKeys {
    /// No such section.
    Missing,
    /// Both keys (and maybe a session token).
    Keys(AwsCredential),
    /// One key without the other (names the missing one).
    Partial(&'static str),
    /// No keys but a setting that needs a provider we lack (names it).
    Unsupported(&'static str),
    /// No keys and nothing that provides them.
    NoKeys,
}

type Ini = std::collections::HashMap<String, std::collections::HashMap<String, Option<String>>>;

/// Parse an AWS profile file: `[section]` headers, `key = value` lines, `#`/`;` comment lines;
/// names are case-sensitive. Errors give the line number only, never the line.
fn parse_ini(text: &str) -> std::result::Result<Ini, String> {
    let mut defaults = configparser::ini::Ini::new_cs().defaults();
    // Lines before the first header must not land in a section named like a profile.
    defaults.default_section = "\u{0}".to_string();
    // AWS files have no inline comments: `#` may be part of a value.
    defaults.enable_inline_comments = false;
    defaults.delimiters = vec!['='];
    configparser::ini::Ini::new_from_defaults(defaults).read(text.to_string())
}

fn profile_keys(text: &str, section: &str) -> std::result::Result<ProfileKeys, String> {
    let ini = parse_ini(text)?;
    let Some(values) = ini.get(section) else {
        return Ok(ProfileKeys::Missing);
    };
    let get = |k: &str| values.get(k).cloned().flatten().filter(|v| !v.is_empty());
    match (get("aws_access_key_id"), get("aws_secret_access_key")) {
        (Some(key_id), Some(secret_key)) => Ok(ProfileKeys::Keys(AwsCredential {
            key_id,
            secret_key,
            token: get("aws_session_token"),
        })),
        (Some(_), None) => Ok(ProfileKeys::Partial("aws_secret_access_key")),
        (None, Some(_)) => Ok(ProfileKeys::Partial("aws_access_key_id")),
        (None, None) => Ok([
            "role_arn",
            "sso_session",
            "sso_start_url",
            "credential_process",
            "web_identity_token_file",
            "credential_source",
        ]
        .into_iter()
        .find(|k| values.contains_key(*k))
        .map_or(ProfileKeys::NoKeys, ProfileKeys::Unsupported)),
    }
}

fn expand_home(path: &str, home: Option<&str>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => FsPath::new(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// A local text file through `object_store`; `None` when it does not exist.
async fn read_local(path: &FsPath) -> Result<Option<String>> {
    let abs = std::path::absolute(path).map_err(|e| Error::io(path, e))?;
    let key = object_store::path::Path::from_absolute_path(&abs)
        .map_err(|e| Error::Config(format!("AWS profile file {}: {e}", path.display())))?;
    let fs = object_store::local::LocalFileSystem::new();
    let bytes = match fs.get(&key).await {
        Ok(r) => r.bytes().await,
        Err(e) => Err(e),
    };
    match bytes {
        Ok(b) => String::from_utf8(b.to_vec()).map(Some).map_err(|_| {
            Error::Config(format!("AWS profile file {} is not UTF-8", path.display()))
        }),
        Err(object_store::Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(Error::store(path.display().to_string(), e)),
    }
}

/// Whether the instance metadata service hands out credentials within [`PROBE_TIMEOUT`]
/// (`object_store`'s own IMDSv2 client, no retries).
async fn instance_metadata_answers(endpoint: Option<String>) -> bool {
    let mut builder = AmazonS3Builder::new()
        .with_bucket_name("imds-probe")
        .with_region("us-east-1")
        .with_retry(RetryConfig {
            max_retries: 0,
            retry_timeout: PROBE_TIMEOUT,
            ..RetryConfig::default()
        })
        .with_config(
            object_store::aws::AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
            "1s",
        );
    if let Some(endpoint) = endpoint.filter(|e| !e.is_empty()) {
        builder = builder.with_metadata_endpoint(endpoint);
    }
    let Ok(store) = builder.build() else {
        return false;
    };
    matches!(
        tokio::time::timeout(PROBE_TIMEOUT, store.credentials().get_credential()).await,
        Ok(Ok(_))
    )
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k: &str| map.get(k).cloned()
    }

    /// An environment with no credentials: an empty home and a metadata endpoint that refuses.
    fn bare(home: &FsPath) -> Vec<(&'static str, String)> {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        vec![
            ("HOME", home.to_string_lossy().into_owned()),
            ("AWS_METADATA_ENDPOINT", format!("http://127.0.0.1:{port}")),
        ]
    }

    async fn resolve_with(pairs: &[(&str, String)]) -> Result<Source> {
        let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        resolve(&env_of(&pairs)).await
    }

    #[test]
    fn profile_sections_keys_and_comments() {
        let text = "top = level\n# comment\n[default]\naws_access_key_id = AKIADEF\n\
                    aws_secret_access_key = s3cr#t;x\n\n[Work]\naws_access_key_id=AKIAW\n\
                    aws_secret_access_key=w\naws_session_token = tok\n[half]\n\
                    aws_access_key_id = A\n[role]\nrole_arn = arn:aws:iam::1:role/r\n\
                    [profile cfg]\nregion = us-west-2\n";
        let ProfileKeys::Keys(c) = profile_keys(text, "default").unwrap() else {
            panic!("default has keys");
        };
        assert_eq!(
            (c.key_id.as_str(), c.secret_key.as_str(), c.token),
            ("AKIADEF", "s3cr#t;x", None)
        );
        let ProfileKeys::Keys(c) = profile_keys(text, "Work").unwrap() else {
            panic!("Work has keys");
        };
        assert_eq!(c.token.as_deref(), Some("tok"));
        assert_eq!(profile_keys(text, "work").unwrap(), ProfileKeys::Missing);
        assert_eq!(
            profile_keys(text, "half").unwrap(),
            ProfileKeys::Partial("aws_secret_access_key")
        );
        assert_eq!(
            profile_keys(text, "role").unwrap(),
            ProfileKeys::Unsupported("role_arn")
        );
        assert_eq!(
            profile_keys(text, "profile cfg").unwrap(),
            ProfileKeys::NoKeys
        );
        let err = profile_keys("[broken\naws_secret_access_key = SECRETVALUE", "x").unwrap_err();
        assert!(
            err.contains("line 1") && !err.contains("SECRETVALUE"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn chain_order_and_fallback_to_unsigned() {
        let home = tempfile::tempdir().unwrap();
        let mut env = bare(home.path());
        assert!(matches!(resolve_with(&env).await.unwrap(), Source::None));

        env.push(("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/creds".into()));
        assert!(matches!(
            resolve_with(&env).await.unwrap(),
            Source::Container
        ));
        env.push(("AWS_WEB_IDENTITY_TOKEN_FILE", "/tok".into()));
        assert!(matches!(
            resolve_with(&env).await.unwrap(),
            Source::Container
        ));
        env.push(("AWS_ROLE_ARN", "arn:aws:iam::1:role/r".into()));
        assert!(matches!(
            resolve_with(&env).await.unwrap(),
            Source::WebIdentity
        ));

        let aws = home.path().join(".aws");
        std::fs::create_dir_all(&aws).unwrap();
        std::fs::write(
            aws.join("config"),
            "[default]\nregion = eu-west-1\n[profile p]\naws_access_key_id = AKIAP\n\
             aws_secret_access_key = sp\n",
        )
        .unwrap();
        // The default profile holds only a region: the chain goes on.
        assert!(matches!(
            resolve_with(&env).await.unwrap(),
            Source::WebIdentity
        ));
        env.push(("AWS_PROFILE", "p".into()));
        let Source::Profile {
            name,
            file,
            credential,
        } = resolve_with(&env).await.unwrap()
        else {
            panic!("profile p from the config file");
        };
        assert_eq!((name.as_str(), credential.key_id.as_str()), ("p", "AKIAP"));
        assert!(file.ends_with(".aws/config"), "{file}");
        std::fs::write(
            aws.join("credentials"),
            "[p]\naws_access_key_id = AKIAC\naws_secret_access_key = sc\n",
        )
        .unwrap();
        let Source::Profile { credential, .. } = resolve_with(&env).await.unwrap() else {
            panic!("profile p from the credentials file");
        };
        assert_eq!(
            credential.key_id, "AKIAC",
            "the credentials file comes first"
        );

        env.push(("AWS_ACCESS_KEY_ID", "AKIAENV".into()));
        env.push(("AWS_SECRET_ACCESS_KEY", "senv".into()));
        let Source::Environment(c) = resolve_with(&env).await.unwrap() else {
            panic!("environment keys come first");
        };
        assert_eq!(c.key_id, "AKIAENV");
    }

    #[tokio::test]
    async fn bad_profiles_and_half_keys_are_errors_naming_them() {
        let home = tempfile::tempdir().unwrap();
        let aws = home.path().join(".aws");
        std::fs::create_dir_all(&aws).unwrap();
        std::fs::write(
            aws.join("credentials"),
            "[half]\naws_access_key_id = AKIAH\n[sso]\nsso_session = corp\n",
        )
        .unwrap();
        let mut env = bare(home.path());
        env.push(("AWS_PROFILE", "nope".into()));
        let err = resolve_with(&env).await.unwrap_err().to_string();
        assert!(
            err.contains("\"nope\"") && err.contains("no such profile"),
            "{err}"
        );
        env.pop();
        env.push(("AWS_PROFILE", "half".into()));
        let err = resolve_with(&env).await.unwrap_err().to_string();
        assert!(
            err.contains("aws_secret_access_key") && err.contains("credentials"),
            "{err}"
        );
        env.pop();
        env.push(("AWS_PROFILE", "sso".into()));
        let err = resolve_with(&env).await.unwrap_err().to_string();
        assert!(err.contains("sso_session"), "{err}");

        let env = vec![("AWS_SECRET_ACCESS_KEY", "LONESECRET".to_string())];
        let err = resolve_with(&env).await.unwrap_err();
        assert!(matches!(err, Error::Config(_)));
        let text = err.to_string();
        assert!(
            text.contains("AWS_ACCESS_KEY_ID") && !text.contains("LONESECRET"),
            "{text}"
        );
    }

    #[test]
    fn debug_and_display_show_no_keys() {
        let source = Source::Profile {
            name: "p".into(),
            file: "/h/.aws/credentials".into(),
            credential: Arc::new(AwsCredential {
                key_id: "AKIAKEYID".into(),
                secret_key: "SECRETKEY".into(),
                token: Some("SESSIONTOKEN".into()),
            }),
        };
        let provider = source.provider().unwrap();
        for text in [
            format!("{source:?}"),
            format!("{source}"),
            format!("{provider:?}"),
        ] {
            for secret in ["AKIAKEYID", "SECRETKEY", "SESSIONTOKEN"] {
                assert!(!text.contains(secret), "{text}");
            }
        }
    }
}
