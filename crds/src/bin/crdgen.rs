//! Prints the `PhpAppServer` CustomResourceDefinition as YAML (what the chart ships).

use std::io::Write;

fn main() -> std::process::ExitCode {
    match pacer_crds::crd_yaml() {
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
