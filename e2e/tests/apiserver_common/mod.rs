//! Shared fixtures of the API stand-in tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use netheal_e2e::apiserver::{ApiServer, ApiServerConfig, RunningApiServer};
use serde_json::{Value, json};

/// A cluster-scoped test CRD with a status subresource, printer columns, defaults, enum,
/// bounds, pattern and a CEL rule.
pub const GADGET_CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: gadgets.test.netheal.io
spec:
  group: test.netheal.io
  scope: Cluster
  names: {plural: gadgets, singular: gadget, kind: Gadget, shortNames: [gd]}
  versions:
  - name: v1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Mode, type: string, jsonPath: .spec.mode}
    - {name: Size, type: integer, jsonPath: .spec.size}
    - {name: Phase, type: string, jsonPath: .status.phase}
    - {name: Colour, type: string, jsonPath: .spec.colour, priority: 1}
    - {name: Age, type: date, jsonPath: .metadata.creationTimestamp}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            x-kubernetes-validations:
            - rule: "self.mode != 'Enforce' || self.size >= 2"
              message: "Enforce needs size of at least 2"
            properties:
              mode: {type: string, enum: [DryRun, Enforce], default: DryRun}
              size: {type: integer, minimum: 1, maximum: 10}
              colour: {type: string, pattern: "^[a-z]+$", maxLength: 8}
          status:
            type: object
            properties:
              phase: {type: string}
"#;

pub async fn start() -> RunningApiServer {
    start_with(ApiServerConfig::default()).await
}

pub async fn start_with(config: ApiServerConfig) -> RunningApiServer {
    ApiServer::start(config).await.expect("server starts")
}

/// A server with the Gadget CRD loaded.
pub async fn start_with_gadgets(config: ApiServerConfig) -> RunningApiServer {
    let server = start_with(config).await;
    server.apply_manifest(GADGET_CRD).await.expect("CRD loads");
    server
}

pub fn gadget_resource() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("test.netheal.io", "v1", "Gadget"),
        "gadgets",
    )
}

pub fn gadgets(client: kube::Client) -> Api<DynamicObject> {
    Api::all_with(client, &gadget_resource())
}

pub fn gadget(name: &str, spec: Value) -> DynamicObject {
    let mut o = DynamicObject::new(name, &gadget_resource());
    o.data = json!({"spec": spec});
    o
}

pub async fn create_gadget(api: &Api<DynamicObject>, name: &str, spec: Value) -> DynamicObject {
    api.create(&PostParams::default(), &gadget(name, spec))
        .await
        .expect("gadget created")
}

/// The HTTP code of a refusal.
pub fn code(e: &kube::Error) -> u16 {
    match e {
        kube::Error::Api(s) => s.code,
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// The message of a refusal.
pub fn message(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) => s.message.clone(),
        other => panic!("expected an API error, got {other:?}"),
    }
}

/// Poll `f` until it returns true or 10 s pass.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
