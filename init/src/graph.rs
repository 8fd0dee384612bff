//! Start order from `depends_on`: a topological order, rejecting unknown
//! dependencies, cycles and a dependency on a later boot phase.

use std::collections::HashMap;

use crate::spec::ServiceSpec;

/// Why the service graph cannot be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    /// Two services with one name.
    #[error("service {0} is declared twice")]
    Duplicate(String),
    /// A dependency names no service.
    #[error("service {service} depends on unknown service {dependency}")]
    UnknownDependency { service: String, dependency: String },
    /// A dependency starts in a later phase than its dependant.
    #[error("service {service} (phase {phase:?}) depends on {dependency}, which starts later")]
    LaterPhase {
        service: String,
        phase: crate::spec::Phase,
        dependency: String,
    },
    /// Dependencies that form a cycle.
    #[error("dependency cycle among: {}", .0.join(", "))]
    Cycle(Vec<String>),
}

/// Indices into `specs` in start order: by phase, then dependencies
/// first, then declaration order.
pub fn start_order(specs: &[ServiceSpec]) -> Result<Vec<usize>, GraphError> {
    let mut index = HashMap::new();
    for (i, s) in specs.iter().enumerate() {
        if index.insert(s.name.as_str(), i).is_some() {
            return Err(GraphError::Duplicate(s.name.clone()));
        }
    }
    let mut deps: Vec<Vec<usize>> = Vec::with_capacity(specs.len());
    for s in specs {
        let mut mine = Vec::new();
        for d in &s.depends_on {
            let &j = index
                .get(d.as_str())
                .ok_or_else(|| GraphError::UnknownDependency {
                    service: s.name.clone(),
                    dependency: d.clone(),
                })?;
            if specs[j].phase > s.phase {
                return Err(GraphError::LaterPhase {
                    service: s.name.clone(),
                    phase: s.phase,
                    dependency: d.clone(),
                });
            }
            mine.push(j);
        }
        deps.push(mine);
    }
    let mut done = vec![false; specs.len()];
    let mut order = Vec::with_capacity(specs.len());
    while order.len() < specs.len() {
        let next = (0..specs.len())
            .filter(|&i| !done[i] && deps[i].iter().all(|&j| done[j]))
            .min_by_key(|&i| (specs[i].phase, i));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                let stuck = (0..specs.len())
                    .filter(|&i| !done[i])
                    .map(|i| specs[i].name.clone())
                    .collect();
                return Err(GraphError::Cycle(stuck));
            }
        }
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Phase;

    fn svc(name: &str, phase: Phase, deps: &[&str]) -> ServiceSpec {
        let mut s = ServiceSpec::new(name, "/bin/true", phase);
        s.depends_on = deps.iter().map(|d| d.to_string()).collect();
        s
    }

    fn names(specs: &[ServiceSpec]) -> Vec<&str> {
        let order = start_order(specs).expect("orders");
        order.iter().map(|&i| specs[i].name.as_str()).collect()
    }

    #[test]
    fn dependencies_and_phases_come_first() {
        let specs = [
            svc("dnsd", Phase::Services, &["bus", "netd"]),
            svc("netd", Phase::Services, &["configd"]),
            svc("configd", Phase::Config, &["bus"]),
            svc("bus", Phase::Bus, &[]),
            svc("fwd", Phase::Services, &["netd"]),
        ];
        assert_eq!(names(&specs), ["bus", "configd", "netd", "dnsd", "fwd"]);
    }

    #[test]
    fn cycles_and_unknown_dependencies_are_refused() {
        let cyc = [
            svc("a", Phase::Services, &["b"]),
            svc("b", Phase::Services, &["c"]),
            svc("c", Phase::Services, &["a"]),
            svc("d", Phase::Services, &[]),
        ];
        assert_eq!(
            start_order(&cyc),
            Err(GraphError::Cycle(vec!["a".into(), "b".into(), "c".into()]))
        );
        let unknown = [svc("a", Phase::Services, &["nope"])];
        let err = start_order(&unknown).expect_err("unknown");
        assert_eq!(err.to_string(), "service a depends on unknown service nope");
        let later = [
            svc("bus", Phase::Bus, &["x"]),
            svc("x", Phase::Services, &[]),
        ];
        assert!(matches!(
            start_order(&later),
            Err(GraphError::LaterPhase { .. })
        ));
        let dup = [svc("a", Phase::Bus, &[]), svc("a", Phase::Bus, &[])];
        assert_eq!(start_order(&dup), Err(GraphError::Duplicate("a".into())));
    }
}
