//! A runner request: what the HTTP functions put on the `runner-requests` queue and
//! `provision` takes off it. Plain data; the queue itself is the host's.

use serde::{Deserialize, Serialize};

/// Where a runner request came from (the `origin` tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    Webhook,
    Workflow,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Webhook => "webhook",
            Origin::Workflow => "workflow",
        }
    }
}

/// A message on the `runner-requests` queue. Its top-level keys are copied into the queue
/// trigger's Metadata by the host, so none is named `id`, `dequeueCount` or `sys`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request {
    Create(Create),
    Release(Release),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Create {
    /// Runner name = container group name.
    pub runner: String,
    /// `owner/name` of the repository the job or token came from.
    pub repository: String,
    pub origin: Origin,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<u64>,
    pub run: u64,
    pub attempt: u32,
    pub labels: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub runner: String,
    pub repository: String,
    /// Set for a job cancelled while queued: the group made for it may by now run another
    /// job, so it is released only if its runner is not busy.
    #[serde(default)]
    pub only_if_idle: bool,
}

impl Request {
    pub fn runner(&self) -> &str {
        match self {
            Request::Create(c) => &c.runner,
            Request::Release(r) => &r.runner,
        }
    }

    pub fn repository(&self) -> &str {
        match self {
            Request::Create(c) => &c.repository,
            Request::Release(r) => &r.repository,
        }
    }

    /// The operation's name in answers and log lines.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Create(_) => "create",
            Request::Release(_) => "release",
        }
    }

    pub fn to_message(&self) -> String {
        serde_json::to_string(self).expect("a request always serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn queue_messages_have_no_keys_the_host_would_clobber() {
        let requests = [
            Request::Create(Create {
                runner: "aci-runner-42".into(),
                repository: "octo-org/octo-repo".into(),
                origin: Origin::Webhook,
                job: Some(42),
                run: 7,
                attempt: 1,
                labels: vec!["self-hosted".into(), "aci".into()],
            }),
            Request::Release(Release {
                runner: "aci-runner-42".into(),
                repository: "octo-org/octo-repo".into(),
                only_if_idle: true,
            }),
        ];
        for r in requests {
            let v: Value = serde_json::from_str(&r.to_message()).unwrap();
            for k in v.as_object().unwrap().keys() {
                let k = k.to_ascii_lowercase();
                let clobbered = [
                    "id",
                    "dequeuecount",
                    "popreceipt",
                    "insertiontime",
                    "expirationtime",
                    "nextvisibletime",
                    "sys",
                ];
                assert!(!clobbered.contains(&k.as_str()), "{k}");
                assert!(!k.ends_with("trigger"), "{k}");
            }
            assert_eq!(serde_json::from_value::<Request>(v).unwrap(), r);
        }
    }
}
