//! Template `branches`: several template queries run as one Flink job (`EXECUTE STATEMENT
//! SET`), e.g. a CEP rule and a threshold rule writing one alert topic. Each branch is a
//! template and its params; a source (or sink) declared the same way by several branches is
//! one table, read once.
use crate::pipeline::context::Ctx;
use crate::pipeline::error::PipelineError;
use crate::pipeline::params::{Params, Role, TableRef};
use serde::{Deserialize, Serialize};
use serde_json::Value;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Branch {
    pub template: String,
    pub params: Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct BranchesParams {
    pub branches: Vec<Branch>,
}

/// The branches' params, parsed; errors name `params.branches[i]`.
pub(crate) fn parse(
    pipeline: &str,
    p: &BranchesParams,
) -> Result<Vec<(String, Params)>, PipelineError> {
    if p.branches.len() < 2 || p.branches.len() > 20 {
        return Err(PipelineError::invalid(
            pipeline,
            "params.branches",
            format!("must list 2 to 20 branches, not {}", p.branches.len()),
            "E.g. [{\"template\": \"cep\", \"params\": {...}}, {\"template\": \"filter_alert\", \"params\": {...}}].",
        ));
    }
    let mut out = Vec::new();
    for (i, b) in p.branches.iter().enumerate() {
        if matches!(b.template.as_str(), "branches" | "sql") {
            return Err(PipelineError::invalid(
                pipeline,
                &format!("params.branches[{i}].template"),
                format!("\"{}\" cannot be a branch", b.template),
                "Branches are template pipelines: window_aggregate, filter_alert, cep, top_n, ...",
            ));
        }
        let parsed =
            Params::parse(pipeline, &b.template, &b.params).map_err(|e| in_branch(e, i))?;
        out.push((b.template.clone(), parsed));
    }
    Ok(out)
}

/// An error of branch `i`, its params path made the pipeline's (`params.branches[i].params.…`).
pub(crate) fn in_branch(mut e: PipelineError, i: usize) -> PipelineError {
    let at = format!(": params.branches[{i}].params");
    if let Some(pos) = e.message.find(": params") {
        e.message.replace_range(pos..pos + ": params".len(), &at);
    }
    e
}

/// Renders every branch (tables prefixed `b<i>_`); their INSERTs become one statement set.
pub(crate) fn render(
    cx: &mut Ctx,
    branches: &[(String, Params)],
    render_one: impl Fn(&mut Ctx, &Params) -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    for (i, (_, p)) in branches.iter().enumerate() {
        cx.prefix = format!("b{i}_");
        render_one(cx, p).map_err(|e| in_branch(e, i))?;
    }
    cx.prefix.clear();
    Ok(())
}

/// The branches' table references with their params paths.
pub(crate) fn table_refs(branches: &mut [(String, Params)]) -> Vec<(String, Role, &mut TableRef)> {
    branches
        .iter_mut()
        .enumerate()
        .flat_map(|(i, (_, p))| {
            p.table_refs_mut().into_iter().map(move |(path, role, t)| {
                (
                    path.replacen("params", &format!("params.branches[{i}].params"), 1),
                    role,
                    t,
                )
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::pipeline::testing::*;
    use serde_json::json;

    #[test]
    fn golden_scripts_of_the_examples() {
        check_golden("branches");
    }

    #[test]
    fn a_shared_source_and_sink_are_one_table_and_the_job_one_statement_set() {
        let cat = catalog(false);
        let s = render_example(&example("risk_rules"), &cat).unwrap();
        assert_eq!(s.matches("CREATE TEMPORARY TABLE").count(), 2, "{s}");
        assert!(s.contains("EXECUTE STATEMENT SET"), "{s}");
        assert_eq!(s.matches("INSERT INTO `b0_sink`").count(), 2, "{s}");
    }

    #[test]
    fn errors_name_the_branch() {
        let cases: Vec<(&str, Mutation, &str)> = vec![
            (
                "risk_rules",
                Box::new(|p| {
                    p["params"]["branches"][1]["params"]["conditions"][0]["column"] = json!("knd")
                }),
                "params.branches[1].params.conditions[0].column: unknown column \"knd\"",
            ),
            (
                "risk_rules",
                Box::new(|p| p["params"]["branches"][0]["template"] = json!("sql")),
                "params.branches[0].template: \"sql\" cannot be a branch",
            ),
            (
                "risk_rules",
                Box::new(|p| {
                    p["params"]["branches"].as_array_mut().unwrap().pop();
                }),
                "params.branches: must list 2 to 20 branches, not 1",
            ),
        ];
        assert_errors(cases);
    }
}
