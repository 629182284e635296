//! The kubectl exec credential protocol (client-go's
//! `client.authentication.k8s.io`): the request kubectl passes in
//! `KUBERNETES_EXEC_INFO`, and the `ExecCredential` a plugin prints.
//!
//! The response carries a private key, so it is built in one zeroizing
//! buffer allocated large enough up front (no reallocation leaves a copy
//! behind) and handed out as a [`Secret`].

use std::io::Write;

use serde::Deserialize;
use time::OffsetDateTime;

use crate::error::{Error, Result};
use crate::secret::Secret;

/// The name of the environment variable kubectl sets for exec plugins.
pub const EXEC_INFO_VAR: &str = "KUBERNETES_EXEC_INFO";

/// The API versions kaws speaks; kubectl asks for the one the kubeconfig's
/// exec entry names, and the answer must be in that version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiVersion {
    V1,
    V1Beta1,
}

impl ApiVersion {
    pub const V1_STR: &'static str = "client.authentication.k8s.io/v1";
    pub const V1BETA1_STR: &'static str = "client.authentication.k8s.io/v1beta1";

    pub fn as_str(self) -> &'static str {
        match self {
            ApiVersion::V1 => Self::V1_STR,
            ApiVersion::V1Beta1 => Self::V1BETA1_STR,
        }
    }
}

#[derive(Deserialize)]
struct ExecInfo {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
}

/// What kubectl asks for, from the value of `KUBERNETES_EXEC_INFO`. Unset
/// (a person running the plugin by hand) means v1.
pub fn requested_version(exec_info: Option<&str>) -> Result<ApiVersion> {
    let Some(text) = exec_info.filter(|t| !t.trim().is_empty()) else {
        return Ok(ApiVersion::V1);
    };
    let fix = "kubectl sets it from the kubeconfig's exec entry: run `kaws admin install` again to rewrite that entry";
    if text.len() > 1024 * 1024 {
        return Err(Error::input(format!(
            "{EXEC_INFO_VAR} is too large ({} bytes)",
            text.len()
        ))
        .with_hint(fix));
    }
    let info: ExecInfo = serde_json::from_str(text).map_err(|e| {
        Error::input(format!(
            "{EXEC_INFO_VAR} is not an ExecCredential request ({e})"
        ))
        .with_hint(fix)
    })?;
    if let Some(kind) = info.kind.as_deref().filter(|k| *k != "ExecCredential") {
        return Err(Error::input(format!(
            "{EXEC_INFO_VAR} is a {kind:?}, not an ExecCredential request"
        ))
        .with_hint(fix));
    }
    match info.api_version.as_deref() {
        None | Some(ApiVersion::V1_STR) => Ok(ApiVersion::V1),
        Some(ApiVersion::V1BETA1_STR) => Ok(ApiVersion::V1Beta1),
        Some(other) => Err(Error::input(format!(
            "{EXEC_INFO_VAR} asks for {:?}; kaws answers {} and {}",
            other.chars().take(100).collect::<String>(),
            ApiVersion::V1_STR,
            ApiVersion::V1BETA1_STR
        ))
        .with_hint(format!(
            "set `apiVersion: {}` in the kubeconfig's exec entry, or run `kaws admin install` again",
            ApiVersion::V1_STR
        ))),
    }
}

/// RFC 3339 in UTC, as Kubernetes writes times: `2027-01-31T12:00:00Z`.
pub fn rfc3339(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The `ExecCredential` JSON (one line and a newline) with the client
/// certificate and key, valid until `expires`.
pub fn response(
    version: ApiVersion,
    cert_pem: &str,
    key_pem: &Secret,
    expires: OffsetDateTime,
) -> Result<Secret> {
    let key = key_pem
        .expose_str()
        .ok_or_else(|| Error::input("the decrypted key is not PEM text"))?;
    // JSON escapes a byte as at most six (\u00XX): this never reallocates.
    let capacity = 6 * (cert_pem.len() + key.len()) + 512;
    let mut buf = Secret::new(Vec::with_capacity(capacity));
    let out = buf.expose_mut();
    let written = (|| -> std::io::Result<()> {
        write!(
            out,
            "{{\"apiVersion\":\"{}\",\"kind\":\"ExecCredential\",\"status\":{{\"expirationTimestamp\":\"{}\",\"clientCertificateData\":",
            version.as_str(),
            rfc3339(expires)
        )?;
        serde_json::to_writer(&mut *out, cert_pem)?;
        out.write_all(b",\"clientKeyData\":")?;
        serde_json::to_writer(&mut *out, key)?;
        out.write_all(b"}}\n")
    })();
    written.map_err(|e| Error::input(format!("could not build the ExecCredential: {e}")))?;
    debug_assert!(buf.expose().len() <= capacity);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(requested_version(None).unwrap(), ApiVersion::V1);
        assert_eq!(requested_version(Some("")).unwrap(), ApiVersion::V1);
        let v1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1","spec":{"interactive":false}}"#;
        assert_eq!(requested_version(Some(v1)).unwrap(), ApiVersion::V1);
        let b1 = r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1beta1","spec":{}}"#;
        assert_eq!(requested_version(Some(b1)).unwrap(), ApiVersion::V1Beta1);
        let a1 =
            r#"{"kind":"ExecCredential","apiVersion":"client.authentication.k8s.io/v1alpha1"}"#;
        assert!(requested_version(Some(a1))
            .unwrap_err()
            .message()
            .contains("v1alpha1"));
        assert!(requested_version(Some("{not json")).is_err());
        assert!(requested_version(Some(r#"{"kind":"Pod"}"#)).is_err());
    }

    #[test]
    fn response_is_json_kubectl_reads() {
        let key =
            Secret::new(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n".to_vec());
        let t = OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap();
        let r = response(ApiVersion::V1, "CERT\n", &key, t).unwrap();
        let v: serde_json::Value = serde_json::from_slice(r.expose()).unwrap();
        assert_eq!(v["kind"], "ExecCredential");
        assert_eq!(v["apiVersion"], ApiVersion::V1_STR);
        assert_eq!(v["status"]["expirationTimestamp"], "2027-01-15T08:00:00Z");
        assert_eq!(v["status"]["clientCertificateData"], "CERT\n");
        assert!(v["status"]["clientKeyData"]
            .as_str()
            .unwrap()
            .starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert_eq!(r.expose().iter().filter(|b| **b == b'\n').count(), 1);
    }
}
