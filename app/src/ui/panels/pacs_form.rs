//! The PACS window's forms: a node being edited (DIMSE or DICOMweb) and the query keys, as
//! text until they are applied.

use std::path::PathBuf;

use crate::pacs::{Auth, Config, Endpoint, Node, Query, WebNode, nodes};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeKind {
    #[default]
    Dimse,
    Web,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AuthKind {
    #[default]
    None,
    Basic,
    Bearer,
}

/// The node editor's fields, as text.
#[derive(Debug, Clone, Default)]
pub struct NodeForm {
    pub kind: NodeKind,
    pub name: String,
    pub ae: String,
    pub host: String,
    pub port: String,
    pub our_ae: String,
    pub url: String,
    pub auth: AuthKind,
    pub user: String,
    /// A new password or token; empty keeps the saved one.
    pub secret: String,
    pub ca_file: String,
    pub timeout: String,
}

impl NodeForm {
    pub(in crate::ui) fn blank() -> NodeForm {
        NodeForm {
            our_ae: nodes::DEFAULT_OUR_AE.into(),
            port: "104".into(),
            timeout: nodes::DEFAULT_TIMEOUT_S.to_string(),
            ..NodeForm::default()
        }
    }

    pub(in crate::ui) fn of(e: &Endpoint) -> NodeForm {
        match e {
            Endpoint::Dimse(n) => NodeForm {
                kind: NodeKind::Dimse,
                name: n.name.clone(),
                ae: n.ae_title.clone(),
                host: n.host.clone(),
                port: n.port.to_string(),
                our_ae: n.our_ae.clone(),
                timeout: n.timeout_s.to_string(),
                ..NodeForm::blank()
            },
            Endpoint::Web(w) => NodeForm {
                kind: NodeKind::Web,
                name: w.name.clone(),
                url: w.url.clone(),
                auth: match w.auth {
                    Auth::None => AuthKind::None,
                    Auth::Basic { .. } => AuthKind::Basic,
                    Auth::Bearer { .. } => AuthKind::Bearer,
                },
                user: match &w.auth {
                    Auth::Basic { user, .. } => user.clone(),
                    _ => String::new(),
                },
                ca_file: w.ca_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                timeout: w.timeout_s.to_string(),
                ..NodeForm::blank()
            },
        }
    }

    /// Adds or replaces the node in `config`; a blank secret keeps the one already saved.
    pub(in crate::ui) fn apply(&self, config: &mut Config) -> Result<(), String> {
        let name = self.name.trim().to_string();
        let timeout: u64 = self
            .timeout
            .trim()
            .parse()
            .map_err(|_| format!("timeout {:?} is not a number of seconds", self.timeout))?;
        match self.kind {
            NodeKind::Dimse => {
                let port: u16 = self
                    .port
                    .trim()
                    .parse()
                    .map_err(|_| format!("port {:?} is not a port number", self.port))?;
                // Not in the form: a node's own setting (pacs.json) is kept.
                let max_dataset_mb = config
                    .nodes
                    .iter()
                    .find(|n| n.name == name)
                    .map_or(crate::pacs::nodes::DEFAULT_MAX_DATASET_MB, |n| n.max_dataset_mb);
                config
                    .upsert(Node {
                        name,
                        ae_title: self.ae.trim().into(),
                        host: self.host.trim().into(),
                        port,
                        our_ae: self.our_ae.trim().into(),
                        timeout_s: timeout,
                        max_dataset_mb,
                    })
                    .map_err(|e| e.to_string())
            }
            NodeKind::Web => {
                let saved = config.web.iter().find(|w| w.name == name).map(|w| w.auth.clone());
                let secret = self.secret.trim_end_matches(['\r', '\n']).to_string();
                let auth = match (self.auth, saved) {
                    (AuthKind::None, _) => Auth::None,
                    (AuthKind::Basic, saved) => Auth::Basic {
                        user: self.user.trim().into(),
                        password: match (secret.is_empty(), saved) {
                            (false, _) => secret,
                            (true, Some(Auth::Basic { password, .. })) => password,
                            (true, _) => return Err("basic authentication needs a password".into()),
                        },
                    },
                    (AuthKind::Bearer, saved) => Auth::Bearer {
                        token: match (secret.is_empty(), saved) {
                            (false, _) => secret,
                            (true, Some(Auth::Bearer { token })) => token,
                            (true, _) => return Err("a bearer token is needed".into()),
                        },
                    },
                };
                let ca = self.ca_file.trim();
                config
                    .upsert_web(WebNode {
                        name,
                        url: self.url.trim().into(),
                        auth,
                        ca_file: (!ca.is_empty()).then(|| PathBuf::from(ca)),
                        timeout_s: timeout,
                    })
                    .map_err(|e| e.to_string())
            }
        }
    }
}

/// The query keys, as text (empty: any).
#[derive(Debug, Clone, Default)]
pub struct QueryForm {
    pub patient_name: String,
    pub patient_id: String,
    pub date: String,
    pub modality: String,
    pub accession: String,
}

impl QueryForm {
    pub(in crate::ui) fn query(&self) -> Query {
        let key = |s: &String| Some(s.trim().to_string()).filter(|s| !s.is_empty());
        Query {
            patient_name: key(&self.patient_name),
            patient_id: key(&self.patient_id),
            study_date: key(&self.date),
            modality: key(&self.modality),
            accession: key(&self.accession),
            ..Query::default()
        }
    }
}

