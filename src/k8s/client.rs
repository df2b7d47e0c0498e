//! Cluster access the way `kubectl` resolves it: an explicit kubeconfig file from the scenario,
//! else `KUBECONFIG` / `~/.kube/config` (with an optional named context), else the in-cluster
//! service account when xiuload itself runs in a pod.

use super::config::KubeSection;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot read kubeconfig {path}: {}", super::watch::describe(.source))]
    ReadKubeconfig {
        path: String,
        #[source]
        source: kube::config::KubeconfigError,
    },
    #[error("KUBECONFIG={0} names no kubeconfig file")]
    EmptyKubeconfig(String),
    #[error("kubeconfig: {0}")]
    Kubeconfig(#[source] kube::config::KubeconfigError),
    #[error(
        "no cluster access: no kubeconfig (KUBECONFIG, ~/.kube/config) and not running in a pod: {0}"
    )]
    Infer(#[source] kube::config::InferConfigError),
    #[error("cannot build the Kubernetes client: {0}")]
    Build(#[source] kube::Error),
}

/// Resolves the cluster configuration for `section` (not yet contacting the API server).
pub async fn config(section: &KubeSection) -> Result<Config, ClientError> {
    let options = KubeConfigOptions {
        context: section.context.clone(),
        ..Default::default()
    };
    match (&section.kubeconfig, &section.context) {
        (Some(path), _) => {
            let kubeconfig =
                Kubeconfig::read_from(path).map_err(|source| ClientError::ReadKubeconfig {
                    path: path.display().to_string(),
                    source,
                })?;
            Config::from_custom_kubeconfig(kubeconfig, &options)
                .await
                .map_err(ClientError::Kubeconfig)
        }
        // A named context only exists in a kubeconfig: no in-cluster fallback.
        (None, Some(_)) => Config::from_kubeconfig(&options)
            .await
            .map_err(ClientError::Kubeconfig),
        // A KUBECONFIG that is set but broken is the user's error to see, named: falling through
        // to the in-cluster attempt would report "not running in a pod" instead.
        (None, None) => match std::env::var("KUBECONFIG") {
            Ok(paths) if !paths.is_empty() => {
                let named = |source| ClientError::ReadKubeconfig {
                    path: format!("{paths} (from KUBECONFIG)"),
                    source,
                };
                let kubeconfig = Kubeconfig::from_env()
                    .map_err(named)?
                    .ok_or_else(|| ClientError::EmptyKubeconfig(paths.clone()))?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(named)
            }
            _ => Config::infer().await.map_err(ClientError::Infer),
        },
    }
}

pub async fn client(section: &KubeSection) -> Result<Client, ClientError> {
    Client::try_from(config(section).await?).map_err(ClientError::Build)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn explicit_kubeconfig_with_named_context() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\ncurrent-context: a\nclusters:\n\
             - name: a\n  cluster:\n    server: http://127.0.0.1:1\n\
             - name: b\n  cluster:\n    server: http://127.0.0.1:2\n\
             contexts:\n- name: a\n  context:\n    cluster: a\n    user: u\n\
             - name: b\n  context:\n    cluster: b\n    user: u\n    namespace: nb\n\
             users:\n- name: u\n  user: {}\n",
        )
        .unwrap();
        let mut section = KubeSection::new("ns");
        section.kubeconfig = Some(path.clone());
        assert_eq!(
            config(&section).await.unwrap().cluster_url.port_u16(),
            Some(1)
        );
        section.context = Some("b".into());
        let c = config(&section).await.unwrap();
        assert_eq!(c.cluster_url.port_u16(), Some(2));
        assert_eq!(c.default_namespace, "nb");
        section.kubeconfig = Some(dir.path().join("missing"));
        let err = config(&section).await.unwrap_err().to_string();
        assert!(err.contains("cannot read kubeconfig"), "{err}");
    }
}
