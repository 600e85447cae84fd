//! Parse a request path into what it addresses. Pure: no registry, no I/O.

/// What a request path addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/version`.
    Version,
    /// `/healthz`, `/livez`, `/readyz`.
    Health,
    /// `/api`: the core group's versions.
    CoreVersions,
    /// `/apis`: every group.
    Groups,
    /// `/apis/GROUP`: one group.
    Group(String),
    /// `/api/v1`, `/apis/GROUP/VERSION`: the resources of a group version.
    Resources {
        /// API group (`""` for core).
        group: String,
        /// API version.
        version: String,
    },
    /// `/openapi/v3`: the index of OpenAPI v3 documents.
    OpenApiRoot,
    /// `/openapi/v3/api/v1`, `/openapi/v3/apis/GROUP/VERSION`.
    OpenApiGroupVersion {
        /// API group (`""` for core).
        group: String,
        /// API version.
        version: String,
    },
    /// A collection, an object or a subresource.
    Object(ObjectPath),
    /// Anything else (`/openapi/v2`, unknown prefixes): answered 404.
    Unknown,
}

/// The resource part of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectPath {
    /// API group (`""` for core).
    pub group: String,
    /// API version.
    pub version: String,
    /// Namespace from `namespaces/NS/...`, if any.
    pub namespace: Option<String>,
    /// Resource plural (`pods`).
    pub resource: String,
    /// Object name; `None` for a collection.
    pub name: Option<String>,
    /// Subresource (`status`, `eviction`).
    pub subresource: Option<String>,
}

/// Parse the path of a request (without query string).
pub fn parse(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz", ..] => Route::Health,
        ["openapi", "v3"] => Route::OpenApiRoot,
        ["openapi", "v3", "api", version] => Route::OpenApiGroupVersion {
            group: String::new(),
            version: (*version).to_string(),
        },
        ["openapi", "v3", "apis", group, version] => Route::OpenApiGroupVersion {
            group: (*group).to_string(),
            version: (*version).to_string(),
        },
        ["api"] => Route::CoreVersions,
        ["apis"] => Route::Groups,
        ["apis", group] => Route::Group((*group).to_string()),
        ["api", version] => Route::Resources {
            group: String::new(),
            version: (*version).to_string(),
        },
        ["apis", group, version] => Route::Resources {
            group: (*group).to_string(),
            version: (*version).to_string(),
        },
        ["api", version, rest @ ..] => object("", version, rest),
        ["apis", group, version, rest @ ..] => object(group, version, rest),
        _ => Route::Unknown,
    }
}

fn object(group: &str, version: &str, rest: &[&str]) -> Route {
    let owned = |s: &str| s.to_string();
    let (namespace, resource, name, subresource) = match rest {
        // `namespaces/NAME/status` and `/finalize` are subresources of a Namespace, not a
        // collection called "status" inside it.
        ["namespaces", ns, sub @ ("status" | "finalize")] => {
            (None, "namespaces", Some(*ns), Some(*sub))
        }
        ["namespaces", ns, resource] => (Some(*ns), *resource, None, None),
        ["namespaces", ns, resource, name] => (Some(*ns), *resource, Some(*name), None),
        ["namespaces", ns, resource, name, sub] => (Some(*ns), *resource, Some(*name), Some(*sub)),
        [resource] => (None, *resource, None, None),
        [resource, name] => (None, *resource, Some(*name), None),
        [resource, name, sub] => (None, *resource, Some(*name), Some(*sub)),
        _ => return Route::Unknown,
    };
    Route::Object(ObjectPath {
        group: owned(group),
        version: owned(version),
        namespace: namespace.map(owned),
        resource: owned(resource),
        name: name.map(owned),
        subresource: subresource.map(owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(
        group: &str,
        ns: Option<&str>,
        res: &str,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Route {
        Route::Object(ObjectPath {
            group: group.into(),
            version: if group.is_empty() { "v1" } else { "v1alpha1" }.into(),
            namespace: ns.map(Into::into),
            resource: res.into(),
            name: name.map(Into::into),
            subresource: sub.map(Into::into),
        })
    }

    #[test]
    fn discovery_paths() {
        assert_eq!(parse("/api"), Route::CoreVersions);
        assert_eq!(parse("/apis"), Route::Groups);
        assert_eq!(parse("/apis/netheal.io"), Route::Group("netheal.io".into()));
        assert_eq!(
            parse("/api/v1"),
            Route::Resources {
                group: "".into(),
                version: "v1".into()
            }
        );
        assert_eq!(parse("/version"), Route::Version);
        assert_eq!(parse("/openapi/v2"), Route::Unknown);
        assert_eq!(parse("/openapi/v3"), Route::OpenApiRoot);
        assert_eq!(
            parse("/openapi/v3/apis/netheal.io/v1alpha1"),
            Route::OpenApiGroupVersion {
                group: "netheal.io".into(),
                version: "v1alpha1".into()
            }
        );
    }

    #[test]
    fn core_paths() {
        assert_eq!(parse("/api/v1/nodes"), obj("", None, "nodes", None, None));
        assert_eq!(
            parse("/api/v1/nodes/n1/status"),
            obj("", None, "nodes", Some("n1"), Some("status"))
        );
        assert_eq!(
            parse("/api/v1/namespaces/default/pods"),
            obj("", Some("default"), "pods", None, None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/default/pods/p/eviction"),
            obj("", Some("default"), "pods", Some("p"), Some("eviction"))
        );
        assert_eq!(
            parse("/api/v1/namespaces/kube-system"),
            obj("", None, "namespaces", Some("kube-system"), None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/kube-system/status"),
            obj("", None, "namespaces", Some("kube-system"), Some("status"))
        );
        assert_eq!(parse("/api/v1/namespaces/a/b/c/d/e"), Route::Unknown);
    }

    #[test]
    fn group_paths() {
        assert_eq!(
            parse("/apis/netheal.io/v1alpha1/networkhealthpolicies/p/status"),
            obj(
                "netheal.io",
                None,
                "networkhealthpolicies",
                Some("p"),
                Some("status")
            )
        );
        assert_eq!(
            parse("/apis/netheal.io/v1alpha1/namespaces/x/leases/"),
            obj("netheal.io", Some("x"), "leases", None, None)
        );
    }
}
