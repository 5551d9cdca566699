//! The Kubernetes manifests, checked offline. Every file under `deploy/kubernetes/` and every
//! overlay as `kubectl kustomize` renders it is parsed into the Kubernetes API's own types
//! (k8s-openapi, at Kubernetes 1.30, the oldest deploy/README.md supports), and a field those
//! types do not know fails the test instead of vanishing. Then the rendered pods are held to
//! what the README promises: the repository's policy byte for byte, a gateway configuration
//! scopegate accepts, probes on the admin port, no root, no writes, no capabilities, a drain
//! that fits the termination grace period, and a policy mount that sees ConfigMap updates.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PodSpec, Service, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use scopegate::config::{Settings, Threads};

// ---------------------------------------------------------------------------------------
// Stories

#[test]
fn every_manifest_file_parses_into_the_kubernetes_types_without_losing_a_field() {
    let files = yaml_files(&kubernetes_dir());
    let mut problems = Vec::new();
    for file in &files {
        let origin = relative(file);
        let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{origin}: {e}"));
        match usage(file) {
            Usage::Kustomization => {
                for doc in documents(&text, &origin) {
                    let kind = (doc["apiVersion"].as_str(), doc["kind"].as_str());
                    if !matches!(
                        kind,
                        (
                            Some("kustomize.config.k8s.io/v1beta1"),
                            Some("Kustomization")
                        ) | (Some("kustomize.config.k8s.io/v1alpha1"), Some("Component"))
                    ) {
                        problems.push(format!(
                            "{origin}: not a Kustomization or Component: {kind:?}"
                        ));
                    }
                }
            }
            Usage::Resources => {
                for (i, doc) in documents(&text, &origin).iter().enumerate() {
                    if let Err(e) = parse_object(&format!("{origin} (document {})", i + 1), doc) {
                        problems.push(e);
                    }
                }
            }
            Usage::Generated(generator) => match generator.as_str() {
                "scopegate-config" => {
                    if let Err(errors) = Settings::parse(&text, &origin, Path::new("")) {
                        problems.extend(errors.iter().map(ToString::to_string));
                    }
                }
                "scopegate-policy" => {
                    if let Err(errors) = scopegate::policy::compile(text.as_bytes(), &origin) {
                        problems.extend(errors.iter().map(ToString::to_string));
                    }
                }
                other => problems.push(format!(
                    "{origin}: generated into ConfigMap {other}, which no test knows"
                )),
            },
            Usage::Unreferenced => problems.push(format!(
                "{origin}: no kustomization.yaml names it, so it is never deployed"
            )),
        }
    }
    assert!(problems.is_empty(), "\n{}", problems.join("\n"));
    // The walk reaches the symlinked policy, the generated configs and the CRD.
    let walked: Vec<String> = files.iter().map(|f| relative(f)).collect();
    for expected in [
        "deploy/kubernetes/base/policy/timesheets.yaml",
        "deploy/kubernetes/base/scopegate.yaml",
        "deploy/kubernetes/overlays/edge/scopegate.yaml",
        "deploy/kubernetes/components/monitoring/servicemonitor.yaml",
    ] {
        assert!(
            walked.iter().any(|w| w == expected),
            "{expected} not in {walked:?}"
        );
    }
}

#[test]
fn every_rendered_overlay_parses_into_the_kubernetes_types_without_losing_a_field() {
    let overlays = overlay_names();
    assert!(
        overlays.contains(&"sidecar".to_owned()) && overlays.contains(&"edge".to_owned()),
        "{overlays:?}"
    );
    for overlay in &overlays {
        let objects = &rendered(overlay).objects;
        let kinds: BTreeSet<&str> = objects.iter().map(Object::kind).collect();
        for kind in [
            "ConfigMap",
            "Deployment",
            "Service",
            "ServiceAccount",
            "ServiceMonitor",
        ] {
            assert!(
                kinds.contains(kind),
                "overlay {overlay} renders no {kind}: {kinds:?}"
            );
        }
        for object in objects {
            assert_eq!(
                object.meta().namespace.as_deref(),
                Some("timesheets"),
                "overlay {overlay}: {} {:?} is not in the namespace timesheets",
                object.kind(),
                object.meta().name
            );
        }
    }
}

#[test]
fn a_misspelled_or_misplaced_field_is_reported_with_its_file_and_path() {
    // k8s-openapi skips fields it does not know; the round trip must catch them.
    let path = kubernetes_dir().join("overlays/edge/scopegate-deployment.yaml");
    let mut doc = documents(&std::fs::read_to_string(&path).unwrap(), "deployment").remove(0);
    doc["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnlyRootFilesytem"] =
        json!(true);
    doc["spec"]["template"]["spec"]["containers"][0]["ports"][2]["containerPort"] = json!("9090");
    let err = parse_object("edge/scopegate-deployment.yaml", &doc).unwrap_err();
    assert!(err.starts_with("edge/scopegate-deployment.yaml"), "{err}");
    assert!(
        err.contains("invalid type: string \"9090\", expected i32"),
        "{err}"
    );

    doc["spec"]["template"]["spec"]["containers"][0]["ports"][2]["containerPort"] = json!(9090);
    let err = parse_object("edge/scopegate-deployment.yaml", &doc).unwrap_err();
    assert!(
        err.contains("spec.template.spec.containers[0].securityContext.readOnlyRootFilesytem"),
        "{err}"
    );

    // A field of a newer Kubernetes than 1.30 is unknown too.
    let mut doc = documents(&std::fs::read_to_string(&path).unwrap(), "deployment").remove(0);
    doc["spec"]["template"]["spec"]["containers"][0]["resizePolicy"] =
        json!([{"resourceName": "cpu", "restartPolicy": "NotRequired"}]);
    assert!(parse_object("ok", &doc).is_ok(), "resizePolicy is in 1.30");
    doc["spec"]["template"]["spec"]["containers"][0]["restartPolicyRules"] = json!([]);
    let err = parse_object("newer", &doc).unwrap_err();
    assert!(err.contains("containers[0].restartPolicyRules"), "{err}");

    // `defaultMode: 0440` is 288 to Kubernetes' YAML 1.1 parser and not to YAML 1.2
    // tools: refused here, so the manifests write 288.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("defaultMode: 288"));
    let doc = documents(&text.replace("defaultMode: 288", "defaultMode: 0440"), "d").remove(0);
    let err = parse_object("octal", &doc).unwrap_err();
    assert!(err.contains("expected i32"), "{err}");

    // The ServiceMonitor (a CRD) is checked by our own strict types.
    let path = kubernetes_dir().join("components/monitoring/servicemonitor.yaml");
    let mut doc = documents(&std::fs::read_to_string(&path).unwrap(), "servicemonitor").remove(0);
    assert!(parse_object("ok", &doc).is_ok());
    doc["spec"]["endpoints"][0]["scrapeTimout"] = json!("10s");
    let err = parse_object("servicemonitor.yaml", &doc).unwrap_err();
    assert!(err.contains("scrapeTimout"), "{err}");
    doc["spec"]["endpoints"][0]
        .as_object_mut()
        .unwrap()
        .remove("scrapeTimout");
    doc["metadata"]["lables"] = json!({"a": "b"});
    let err = parse_object("servicemonitor.yaml", &doc).unwrap_err();
    assert!(err.contains("metadata.lables"), "{err}");

    // And a kind nobody checks is an error, not a pass.
    let err = parse_object("x.yaml", &json!({"apiVersion": "v1", "kind": "Secret"})).unwrap_err();
    assert!(err.contains("v1 Secret"), "{err}");
}

#[test]
fn each_overlay_ships_the_repository_policy_byte_for_byte() {
    let policy = std::fs::read_to_string(repo().join("policies/timesheets.yaml")).unwrap();
    for overlay in overlay_names() {
        let r = rendered(&overlay);
        let map = r
            .config_map("scopegate-policy")
            .unwrap_or_else(|| panic!("overlay {overlay}: no ConfigMap scopegate-policy"));
        let data = map.data.clone().unwrap_or_default();
        assert_eq!(
            data.keys().collect::<Vec<_>>(),
            ["timesheets.yaml"],
            "overlay {overlay}: the policy ConfigMap holds other keys"
        );
        assert!(map.binary_data.is_none(), "overlay {overlay}");
        assert!(
            data["timesheets.yaml"] == policy,
            "overlay {overlay}: the policy ConfigMap differs from policies/timesheets.yaml"
        );
    }
}

#[test]
fn each_overlay_configures_the_gateway_with_a_file_scopegate_accepts() {
    for overlay in overlay_names() {
        for pod in scopegate_pods(&overlay) {
            // `Settings::parse` is what `scopegate run` and `scopegate check` do first; the
            // upstream's name is only resolved at start-up, inside the cluster.
            assert!(!pod.config.issuers.is_empty(), "{}", pod.name);
            let upstream = &pod.config.upstream.url;
            match overlay.as_str() {
                "sidecar" => assert_eq!(upstream, "http://127.0.0.1:3000", "{}", pod.name),
                "edge" => assert_eq!(
                    upstream, "http://timesheets.timesheets.svc:80",
                    "{}",
                    pod.name
                ),
                _ => {}
            }
            // Every file the configuration names is where a volume puts it.
            let mut files = vec![pod.config.policy.clone()];
            if let Some(tls) = &pod.config.listen_tls {
                files.push(tls.cert.clone());
                files.push(tls.key.clone());
            }
            files.extend(pod.config.upstream_ca_file.clone());
            for file in files {
                assert!(
                    file.is_absolute(),
                    "{}: {} is relative",
                    pod.name,
                    file.display()
                );
                let mount = pod.mount_of(&file);
                assert!(
                    mount.is_some(),
                    "{}: no volume is mounted at {}",
                    pod.name,
                    file.display()
                );
            }
        }
    }
}

#[test]
fn scopegate_is_probed_on_the_admin_port_its_configuration_listens_on() {
    for overlay in overlay_names() {
        for pod in scopegate_pods(&overlay) {
            let name = &pod.name;
            let c = pod.container;
            let admin = i32::from(pod.config.admin_listen.port());
            let probes = [
                ("liveness", c.liveness_probe.as_ref(), "/healthz"),
                ("readiness", c.readiness_probe.as_ref(), "/readyz"),
                ("startup", c.startup_probe.as_ref(), "/healthz"),
            ];
            for (what, probe, path) in probes {
                let probe = probe.unwrap_or_else(|| panic!("{name}: no {what} probe"));
                let get = probe
                    .http_get
                    .as_ref()
                    .unwrap_or_else(|| panic!("{name}: the {what} probe is not an HTTP GET"));
                assert_eq!(get.path.as_deref(), Some(path), "{name}: {what} probe");
                assert_eq!(
                    pod.container_port(&get.port),
                    Some(admin),
                    "{name}: {what} probe port"
                );
                assert!(
                    matches!(get.scheme.as_deref(), None | Some("HTTP")),
                    "{name}"
                );
            }
            // The named ports the Services use are the ones scopegate listens on.
            assert_eq!(
                pod.container_port(&IntOrString::String("http".into())),
                Some(i32::from(pod.config.listen.port())),
                "{name}"
            );
            if let Some(tls) = &pod.config.listen_tls {
                assert_eq!(
                    pod.container_port(&IntOrString::String("https".into())),
                    Some(i32::from(tls.address.port())),
                    "{name}"
                );
            }
            let annotations = pod.template_annotations();
            assert_eq!(
                annotations.get("prometheus.io/port"),
                Some(&admin.to_string()),
                "{name}"
            );
            assert_eq!(
                annotations.get("prometheus.io/path").map(String::as_str),
                Some("/metrics"),
                "{name}"
            );
        }
    }
}

#[test]
fn every_container_runs_as_non_root_with_a_read_only_root_and_no_capabilities() {
    for overlay in overlay_names() {
        let r = rendered(&overlay);
        for deployment in r.deployments() {
            let name = format!(
                "overlay {overlay}, Deployment {:?}",
                deployment.metadata.name
            );
            let spec = pod_spec(deployment);
            assert_eq!(spec.automount_service_account_token, Some(false), "{name}");
            let pod_non_root = spec
                .security_context
                .as_ref()
                .and_then(|s| s.run_as_non_root);
            for c in &spec.containers {
                let name = format!("{name}, container {}", c.name);
                let sc = c.security_context.clone().unwrap_or_default();
                assert_eq!(
                    sc.run_as_non_root.or(pod_non_root),
                    Some(true),
                    "{name}: runAsNonRoot"
                );
                assert_eq!(
                    sc.read_only_root_filesystem,
                    Some(true),
                    "{name}: readOnlyRootFilesystem"
                );
                assert_eq!(
                    sc.allow_privilege_escalation,
                    Some(false),
                    "{name}: allowPrivilegeEscalation"
                );
                assert_eq!(sc.privileged, None, "{name}");
                let caps = sc.capabilities.unwrap_or_default();
                assert_eq!(
                    caps.drop,
                    Some(vec!["ALL".to_owned()]),
                    "{name}: capabilities.drop"
                );
                assert_eq!(caps.add, None, "{name}: capabilities.add");
            }
        }
        // With a read-only root, scopegate's upgrade socket needs a writable folder.
        for pod in scopegate_pods(&overlay) {
            let socket = &pod.config.upgrade_socket;
            let (mount, volume) = pod.mount_of(socket).unwrap_or_else(|| {
                panic!("{}: nothing writable at {}", pod.name, socket.display())
            });
            assert!(
                volume.empty_dir.is_some(),
                "{}: {} is not an emptyDir",
                pod.name,
                mount.mount_path
            );
            assert_ne!(mount.read_only, Some(true), "{}", pod.name);
        }
    }
}

#[test]
fn the_termination_grace_period_covers_scopegate_drain() {
    for overlay in overlay_names() {
        for pod in scopegate_pods(&overlay) {
            let drain = (pod.config.grace_period + pod.config.graceful_shutdown_timeout).as_secs();
            // Kubernetes' default is 30 s when the field is absent.
            let grace = pod.spec.termination_grace_period_seconds.unwrap_or(30);
            assert!(
                grace >= drain as i64,
                "{}: terminationGracePeriodSeconds {grace} < grace_period_seconds + graceful_shutdown_timeout_seconds = {drain}",
                pod.name
            );
        }
    }
}

#[test]
fn the_edge_gateway_sizes_its_threads_to_its_cpu_limit_and_the_sidecar_runs_one() {
    for overlay in overlay_names() {
        for pod in scopegate_pods(&overlay) {
            let cpu_limit = pod
                .container
                .resources
                .as_ref()
                .and_then(|r| r.limits.as_ref())
                .and_then(|l| l.get("cpu"));
            match overlay.as_str() {
                // Its own pods: `auto` reads the limit, which must then be there (without
                // one, `auto` would take every CPU of the node).
                "edge" => {
                    assert_eq!(pod.config.threads, Threads::Auto, "{}", pod.name);
                    assert!(cpu_limit.is_some(), "{}: no CPU limit for auto", pod.name);
                }
                // Beside the backend: one thread leaves the pod's other cores to it.
                "sidecar" => assert_eq!(pod.config.threads, Threads::Fixed(1), "{}", pod.name),
                _ => {}
            }
        }
    }
}

#[test]
fn every_gateway_names_its_pod_and_namespace_for_its_traces_from_the_downward_api() {
    for overlay in overlay_names() {
        for pod in scopegate_pods(&overlay) {
            let env = pod.container.env.as_deref().unwrap_or_default();
            for (var, field) in [
                ("K8S_POD_NAME", "metadata.name"),
                ("K8S_NAMESPACE_NAME", "metadata.namespace"),
            ] {
                let from = env
                    .iter()
                    .find(|e| e.name == var)
                    .and_then(|e| e.value_from.as_ref())
                    .and_then(|v| v.field_ref.as_ref())
                    .map(|f| f.field_path.as_str());
                assert_eq!(from, Some(field), "{}: {var}", pod.name);
            }
        }
    }
}

#[test]
fn the_policy_is_mounted_as_a_folder_so_configmap_updates_reach_the_gateway() {
    for overlay in overlay_names() {
        let r = rendered(&overlay);
        for pod in scopegate_pods(&overlay) {
            let policy = &pod.config.policy;
            let name = &pod.name;
            let (mount, volume) = pod
                .mount_of(policy)
                .unwrap_or_else(|| panic!("{name}: nothing mounted at {}", policy.display()));
            assert!(
                mount.sub_path.is_none() && mount.sub_path_expr.is_none(),
                "{name}: the policy is mounted with subPath and would never see an update"
            );
            assert_eq!(
                Path::new(&mount.mount_path),
                policy.parent().unwrap(),
                "{name}: the policy's own folder is the mount"
            );
            let source = volume
                .config_map
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: the policy volume is not a ConfigMap"));
            assert_eq!(
                source.name, "scopegate-policy",
                "{name}: stable name, updated in place"
            );
            assert!(source.items.is_none(), "{name}: items would pin the keys");
            let map = r.config_map(&source.name).unwrap();
            let key = policy.file_name().unwrap().to_str().unwrap();
            assert!(
                map.data.as_ref().is_some_and(|d| d.contains_key(key)),
                "{name}: the ConfigMap has no {key}"
            );
        }
    }
}

#[test]
fn services_and_the_service_monitor_reach_scopegate_by_named_ports() {
    for overlay in overlay_names() {
        let r = rendered(&overlay);
        let pods: Vec<(&Deployment, &PodSpec)> =
            r.deployments().map(|d| (d, pod_spec(d))).collect();
        for object in &r.objects {
            let Object::Service(service) = object else {
                continue;
            };
            let name = format!("overlay {overlay}, Service {:?}", service.metadata.name);
            let spec = service.spec.as_ref().unwrap();
            let selected: Vec<&PodSpec> = pods
                .iter()
                .filter(|(d, _)| selects(spec.selector.as_ref(), template_labels(d)))
                .map(|(_, p)| *p)
                .collect();
            assert_eq!(
                selected.len(),
                1,
                "{name} selects {} Deployments' pods",
                selected.len()
            );
            for port in spec.ports.iter().flatten() {
                let target = port
                    .target_port
                    .clone()
                    .unwrap_or(IntOrString::Int(port.port));
                let IntOrString::String(target) = target else {
                    continue;
                };
                let found = selected[0]
                    .containers
                    .iter()
                    .flat_map(|c| c.ports.iter().flatten())
                    .any(|p| p.name.as_deref() == Some(&target));
                assert!(found, "{name}: no container port named {target}");
            }
        }
        for object in &r.objects {
            let Object::ServiceMonitor(monitor) = object else {
                continue;
            };
            let targets: Vec<&Service> = r
                .objects
                .iter()
                .filter_map(|o| match o {
                    Object::Service(s)
                        if selects_labels(&monitor.spec.selector, s.metadata.labels.as_ref()) =>
                    {
                        Some(s)
                    }
                    _ => None,
                })
                .collect();
            assert_eq!(
                targets.len(),
                1,
                "overlay {overlay}: the ServiceMonitor selects {} Services",
                targets.len()
            );
            let ports: Vec<&str> = targets[0]
                .spec
                .iter()
                .flat_map(|s| s.ports.iter().flatten())
                .filter_map(|p| p.name.as_deref())
                .collect();
            for endpoint in &monitor.spec.endpoints {
                assert!(
                    ports.contains(&endpoint.port.as_str()),
                    "overlay {overlay}: no port {} in {ports:?}",
                    endpoint.port
                );
                assert_eq!(endpoint.path.as_deref(), Some("/metrics"));
                let interval = seconds(endpoint.interval.as_deref().unwrap_or("30s"));
                let timeout = seconds(endpoint.scrape_timeout.as_deref().unwrap_or("10s"));
                assert!(
                    timeout <= interval,
                    "overlay {overlay}: scrapeTimeout over interval"
                );
                // The rules and the dashboard select job="scopegate".
                assert!(
                    endpoint
                        .relabelings
                        .iter()
                        .any(|r| r.target_label.as_deref() == Some("job")
                            && r.replacement.as_deref() == Some("scopegate")),
                    "overlay {overlay}: the job label is not pinned to scopegate"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Files and rendering

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn kubernetes_dir() -> PathBuf {
    repo().join("deploy/kubernetes")
}

fn relative(path: &Path) -> String {
    path.strip_prefix(repo())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every `*.yaml`/`*.yml` below `dir` (symlinked files included), sorted.
fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            out.extend(yaml_files(&path));
        } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
            out.push(path);
        }
    }
    out
}

/// The documents of a YAML stream as JSON (empty documents skipped).
fn documents(text: &str, origin: &str) -> Vec<Value> {
    serde_saphyr::from_multiple::<Value>(text)
        .unwrap_or_else(|e| panic!("{origin}: not valid YAML: {e}"))
}

/// How the kustomization next to a file uses it.
enum Usage {
    Kustomization,
    /// Listed under `resources`: Kubernetes objects.
    Resources,
    /// Listed under `configMapGenerator[].files` of the ConfigMap named here.
    Generated(String),
    Unreferenced,
}

fn usage(file: &Path) -> Usage {
    if file.file_name().is_some_and(|n| n == "kustomization.yaml") {
        return Usage::Kustomization;
    }
    // The kustomization of the file's folder or of a folder above (base/policy/…).
    let mut dir = file.parent();
    while let Some(d) = dir.filter(|d| d.starts_with(kubernetes_dir())) {
        let kustomization = d.join("kustomization.yaml");
        if kustomization.exists() {
            let text = std::fs::read_to_string(&kustomization).unwrap();
            let k = documents(&text, &relative(&kustomization)).remove(0);
            let names = |v: &Value| d.join(v.as_str().unwrap_or_default()) == file;
            if k["resources"].as_array().into_iter().flatten().any(names) {
                return Usage::Resources;
            }
            for generator in k["configMapGenerator"].as_array().into_iter().flatten() {
                let listed = generator["files"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|f| {
                        let f = f.as_str().unwrap_or_default();
                        let source = f.split_once('=').map_or(f, |(_, path)| path);
                        d.join(source) == file
                    });
                if listed {
                    return Usage::Generated(
                        generator["name"].as_str().unwrap_or_default().to_owned(),
                    );
                }
            }
        }
        dir = d.parent();
    }
    Usage::Unreferenced
}

fn overlay_names() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(kubernetes_dir().join("overlays"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// An overlay as `kubectl kustomize` renders it, parsed.
struct Rendered {
    objects: Vec<Object>,
}

impl Rendered {
    fn deployments(&self) -> impl Iterator<Item = &Deployment> {
        self.objects.iter().filter_map(|o| match o {
            Object::Deployment(d) => Some(d),
            _ => None,
        })
    }

    fn config_map(&self, name: &str) -> Option<&ConfigMap> {
        self.objects.iter().find_map(|o| match o {
            Object::ConfigMap(m) if m.metadata.name.as_deref() == Some(name) => Some(m),
            _ => None,
        })
    }
}

/// Renders every overlay once per test run.
fn rendered(overlay: &str) -> &'static Rendered {
    static RENDERED: OnceLock<BTreeMap<String, Rendered>> = OnceLock::new();
    let all = RENDERED.get_or_init(|| {
        overlay_names()
            .into_iter()
            .map(|name| {
                let text = kustomize(&name);
                let origin = format!("kubectl kustomize deploy/kubernetes/overlays/{name}");
                let mut objects = Vec::new();
                let mut problems = Vec::new();
                for (i, doc) in documents(&text, &origin).iter().enumerate() {
                    let at = format!(
                        "{origin} (document {}, {} {})",
                        i + 1,
                        doc["kind"],
                        doc["metadata"]["name"]
                    );
                    match parse_object(&at, doc) {
                        Ok(o) => objects.push(o),
                        Err(e) => problems.push(e),
                    }
                }
                assert!(problems.is_empty(), "\n{}", problems.join("\n"));
                (name, Rendered { objects })
            })
            .collect()
    });
    &all[overlay]
}

/// `kubectl kustomize --load-restrictor LoadRestrictionsNone deploy/kubernetes/overlays/<name>`.
fn kustomize(overlay: &str) -> String {
    let dir = kubernetes_dir().join("overlays").join(overlay);
    let out = Command::new("kubectl")
        .args(["kustomize", "--load-restrictor", "LoadRestrictionsNone"])
        .arg(&dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run kubectl ({e}): the deployment checks render the overlays with it; run scripts/setup --test")
        });
    if !out.status.success() {
        let version = Command::new("kubectl")
            .args(["version", "--client"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        panic!(
            "kubectl kustomize failed on {}:\n{}\n{version}(the overlays need a kubectl whose kustomize knows `components`, `labels` and --load-restrictor; Debian 12's kubectl 1.20 does not)",
            relative(&dir),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("kustomize prints UTF-8")
}

// ---------------------------------------------------------------------------------------
// Objects

/// Every kind deploy/kubernetes uses, in its API type.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // a few dozen objects, parsed once
enum Object {
    ConfigMap(ConfigMap),
    Deployment(Deployment),
    HorizontalPodAutoscaler(HorizontalPodAutoscaler),
    NetworkPolicy(NetworkPolicy),
    PodDisruptionBudget(PodDisruptionBudget),
    Service(Service),
    ServiceAccount(ServiceAccount),
    ServiceMonitor(ServiceMonitor),
}

impl Object {
    fn kind(&self) -> &'static str {
        match self {
            Object::ConfigMap(_) => "ConfigMap",
            Object::Deployment(_) => "Deployment",
            Object::HorizontalPodAutoscaler(_) => "HorizontalPodAutoscaler",
            Object::NetworkPolicy(_) => "NetworkPolicy",
            Object::PodDisruptionBudget(_) => "PodDisruptionBudget",
            Object::Service(_) => "Service",
            Object::ServiceAccount(_) => "ServiceAccount",
            Object::ServiceMonitor(_) => "ServiceMonitor",
        }
    }

    fn meta(&self) -> &ObjectMeta {
        match self {
            Object::ConfigMap(o) => &o.metadata,
            Object::Deployment(o) => &o.metadata,
            Object::HorizontalPodAutoscaler(o) => &o.metadata,
            Object::NetworkPolicy(o) => &o.metadata,
            Object::PodDisruptionBudget(o) => &o.metadata,
            Object::Service(o) => &o.metadata,
            Object::ServiceAccount(o) => &o.metadata,
            Object::ServiceMonitor(o) => &o.metadata,
        }
    }
}

/// Parses one manifest document by its apiVersion and kind; `origin` names it in errors.
fn parse_object(origin: &str, doc: &Value) -> Result<Object, String> {
    let api_version = doc["apiVersion"].as_str().unwrap_or("<no apiVersion>");
    let kind = doc["kind"].as_str().unwrap_or("<no kind>");
    match (api_version, kind) {
        ("v1", "ConfigMap") => typed(origin, doc).map(Object::ConfigMap),
        ("v1", "Service") => typed(origin, doc).map(Object::Service),
        ("v1", "ServiceAccount") => typed(origin, doc).map(Object::ServiceAccount),
        ("apps/v1", "Deployment") => typed(origin, doc).map(Object::Deployment),
        ("autoscaling/v2", "HorizontalPodAutoscaler") => {
            typed(origin, doc).map(Object::HorizontalPodAutoscaler)
        }
        ("networking.k8s.io/v1", "NetworkPolicy") => typed(origin, doc).map(Object::NetworkPolicy),
        ("policy/v1", "PodDisruptionBudget") => typed(origin, doc).map(Object::PodDisruptionBudget),
        ("monitoring.coreos.com/v1", "ServiceMonitor") => {
            typed(origin, doc).map(Object::ServiceMonitor)
        }
        _ => Err(format!(
            "{origin}: {api_version} {kind} is not a kind these checks know: add it to parse_object"
        )),
    }
}

/// Deserializes `doc` into `T`, then serializes it back: a key of `doc` missing from the
/// result (or a value that changed) is a field the API type does not have.
fn typed<T: DeserializeOwned + Serialize>(origin: &str, doc: &Value) -> Result<T, String> {
    let object: T = serde_json::from_value(doc.clone()).map_err(|e| format!("{origin}: {e}"))?;
    let back = serde_json::to_value(&object).expect("API objects serialize");
    let mut lost = Vec::new();
    compare(doc, &back, "", &mut lost);
    if lost.is_empty() {
        Ok(object)
    } else {
        Err(format!(
            "{origin}: not in the Kubernetes 1.30 API types (a misspelled, misplaced or newer field):\n  {}",
            lost.join("\n  ")
        ))
    }
}

fn compare(original: &Value, back: &Value, path: &str, lost: &mut Vec<String>) {
    match (original, back) {
        (Value::Object(o), Value::Object(b)) => {
            for (key, value) in o {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match b.get(key) {
                    Some(v) => compare(value, v, &at, lost),
                    None if value.is_null() => {}
                    None => lost.push(at),
                }
            }
        }
        (Value::Array(o), Value::Array(b)) => {
            for (i, value) in o.iter().enumerate() {
                let at = format!("{path}[{i}]");
                match b.get(i) {
                    Some(v) => compare(value, v, &at, lost),
                    None => lost.push(at),
                }
            }
        }
        (o, b) if o == b => {}
        (o, b) => lost.push(format!("{path}: {o} came back as {b}")),
    }
}

// The Prometheus Operator's ServiceMonitor (monitoring.coreos.com/v1) is a CRD, not in
// k8s-openapi: these types cover the fields deploy/ uses and refuse any other.

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitor {
    api_version: String,
    kind: String,
    metadata: ObjectMeta,
    spec: ServiceMonitorSpec,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ServiceMonitorSpec {
    selector: LabelSelector,
    endpoints: Vec<Endpoint>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Endpoint {
    port: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    path: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scheme: Option<Scheme>,
    #[serde(skip_serializing_if = "Option::is_none")]
    interval: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scrape_timeout: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    relabelings: Vec<Relabeling>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Relabeling {
    #[serde(skip_serializing_if = "Option::is_none")]
    action: Option<RelabelAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_labels: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    separator: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    regex: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_label: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replacement: Option<String>,
}

#[derive(Debug, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
enum RelabelAction {
    Replace,
    Keep,
    Drop,
    Keepequal,
    Dropequal,
    Hashmod,
    Labelmap,
    Labeldrop,
    Labelkeep,
    Lowercase,
    Uppercase,
}

/// Seconds of a Prometheus duration like `30s`, `1m` or `500ms`.
fn seconds(duration: &str) -> f64 {
    let split = duration
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(duration.len());
    let (n, unit) = duration.split_at(split);
    let n: f64 = n
        .parse()
        .unwrap_or_else(|_| panic!("bad duration {duration:?}"));
    n * match unit {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => panic!("bad duration {duration:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Pods that run scopegate

/// A rendered Deployment with a `scopegate` container, and the configuration it reads.
struct ScopegatePod {
    name: String,
    deployment: &'static Deployment,
    spec: &'static PodSpec,
    container: &'static Container,
    config: Settings,
}

fn pod_spec(deployment: &Deployment) -> &PodSpec {
    deployment
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .expect("a Deployment has a pod template")
}

fn template_labels(deployment: &Deployment) -> Option<&BTreeMap<String, String>> {
    deployment
        .spec
        .as_ref()?
        .template
        .metadata
        .as_ref()?
        .labels
        .as_ref()
}

fn selects(
    selector: Option<&BTreeMap<String, String>>,
    labels: Option<&BTreeMap<String, String>>,
) -> bool {
    let (Some(selector), Some(labels)) = (selector, labels) else {
        return false;
    };
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

fn selects_labels(selector: &LabelSelector, labels: Option<&BTreeMap<String, String>>) -> bool {
    assert!(
        selector.match_expressions.is_none(),
        "only matchLabels are checked"
    );
    selects(selector.match_labels.as_ref(), labels)
}

/// The scopegate Deployments of an overlay, each with the configuration its `--config`
/// argument points at, read from the mounted ConfigMap and parsed like `scopegate run` does.
fn scopegate_pods(overlay: &str) -> Vec<ScopegatePod> {
    let r = rendered(overlay);
    let mut pods = Vec::new();
    for deployment in r.deployments() {
        let spec = pod_spec(deployment);
        let Some(container) = spec.containers.iter().find(|c| c.name == "scopegate") else {
            continue;
        };
        let name = format!(
            "overlay {overlay}, Deployment {}",
            deployment.metadata.name.as_deref().unwrap_or_default()
        );
        assert!(
            container
                .image
                .as_deref()
                .is_some_and(|i| i.starts_with("ghcr.io/exampleco/scopegate:")),
            "{name}: image {:?}",
            container.image
        );
        let args = container.args.clone().unwrap_or_default();
        let config_path = args
            .windows(2)
            .find(|w| w[0] == "--config")
            .map(|w| PathBuf::from(&w[1]))
            .unwrap_or_else(|| panic!("{name}: no --config argument in {args:?}"));
        let (mount, volume) = find_mount(spec, container, &config_path)
            .unwrap_or_else(|| panic!("{name}: nothing mounted at {}", config_path.display()));
        let key = match &mount.sub_path {
            Some(sub) => sub.clone(),
            None => config_path
                .strip_prefix(&mount.mount_path)
                .unwrap()
                .display()
                .to_string(),
        };
        let map_name = &volume
            .config_map
            .as_ref()
            .unwrap_or_else(|| panic!("{name}: the configuration is not from a ConfigMap"))
            .name;
        assert!(
            map_name.starts_with("scopegate-config-"),
            "{name}: the config ConfigMap's name carries no content hash: {map_name}"
        );
        let text = r
            .config_map(map_name)
            .unwrap_or_else(|| panic!("{name}: ConfigMap {map_name} is not rendered"))
            .data
            .as_ref()
            .and_then(|d| d.get(&key))
            .unwrap_or_else(|| panic!("{name}: ConfigMap {map_name} has no key {key}"));
        let origin = format!("{name} (ConfigMap {map_name}, {key})");
        let config = Settings::parse(text, &origin, Path::new("")).unwrap_or_else(|errors| {
            let lines: Vec<String> = errors.iter().map(ToString::to_string).collect();
            panic!("{}", lines.join("\n"))
        });
        let pod = ScopegatePod {
            name,
            deployment,
            spec,
            container,
            config,
        };
        pods.push(pod);
    }
    assert!(
        !pods.is_empty(),
        "overlay {overlay} runs no scopegate container"
    );
    pods
}

/// The mount (and its volume) whose folder holds `path`, the deepest one if nested.
fn find_mount(
    spec: &'static PodSpec,
    container: &'static Container,
    path: &Path,
) -> Option<(&'static VolumeMount, &'static Volume)> {
    let mount = container
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| path.starts_with(&m.mount_path))
        .max_by_key(|m| m.mount_path.len())?;
    let volume = spec
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == mount.name)
        .unwrap_or_else(|| panic!("container {}: no volume {}", container.name, mount.name));
    Some((mount, volume))
}

impl ScopegatePod {
    fn mount_of(&self, path: &Path) -> Option<(&'static VolumeMount, &'static Volume)> {
        find_mount(self.spec, self.container, path)
    }

    /// The container port a probe or Service port refers to, by number or by name.
    fn container_port(&self, port: &IntOrString) -> Option<i32> {
        match port {
            IntOrString::Int(n) => Some(*n),
            IntOrString::String(name) => self
                .container
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name))
                .map(|p| p.container_port),
        }
    }

    fn template_annotations(&self) -> BTreeMap<String, String> {
        self.deployment
            .spec
            .as_ref()
            .and_then(|s| s.template.metadata.as_ref())
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default()
    }
}
