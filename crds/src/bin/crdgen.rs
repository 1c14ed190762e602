//! Prints the `PhpAppServer` CustomResourceDefinition as YAML; with `--chart`, as the Helm
//! chart's template (what the chart ships).

use std::io::Write;

fn main() -> std::process::ExitCode {
    let chart = std::env::args().any(|a| a == "--chart");
    let rendered = if chart {
        pacer_crds::crd_chart_template()
    } else {
        pacer_crds::crd_yaml()
    };
    match rendered {
        Ok(yaml) => {
            let mut out = std::io::stdout().lock();
            if out
                .write_all(yaml.as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                return std::process::ExitCode::from(74);
            }
            std::process::ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("crdgen: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
