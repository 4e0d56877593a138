//! Keyword arguments as TOML: `Pipeline(model="base", decode={"beam_size":
//! 5})` means what the same keys in the config file mean, laid over it.

use std::path::{Path, PathBuf};

use asr_pipeline::Config;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use serde_json::Value as Json;
use toml::{Table, Value};

use crate::errors::ConfigError;

/// The configuration of a pipeline, and its TOML table: the file's (when
/// given) with `settings` laid over it, relative paths taken from the
/// file's folder (else the working directory). Errors name the file, as
/// `pipeline run`'s do.
pub fn config(
    file: Option<&Path>,
    settings: Option<&Bound<'_, PyDict>>,
) -> PyResult<(Config, Table)> {
    let (mut table, base) = match file {
        Some(path) => {
            // Errors named as `Config::from_file` names them, the CLI's.
            let in_file = |e: &dyn std::fmt::Display| {
                ConfigError::new_err(format!("{}: {e}", path.display()))
            };
            let text = std::fs::read_to_string(path).map_err(|e| in_file(&e))?;
            let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            // Checked alone first, so that its errors point into the file.
            let config = Config::from_toml(&text, &base).map_err(|e| in_file(&e))?;
            let table: Table = text.parse().map_err(|e| in_file(&e))?;
            if settings.is_none_or(|s| s.is_empty()) {
                return Ok((config, table));
            }
            (table, base)
        }
        None => (Table::new(), PathBuf::from(".")),
    };
    if let Some(settings) = settings {
        lay_over(&mut table, json_of(settings)?, "")?;
    }
    let config = Config::from_table(table.clone(), &base).map_err(|message| {
        ConfigError::new_err(format!("{}: {message}", origin(file, settings)))
    })?;
    Ok((config, table))
}

/// Where settings come from, as errors name it.
pub fn origin(file: Option<&Path>, settings: Option<&Bound<'_, PyDict>>) -> String {
    match (file, settings.is_some_and(|s| !s.is_empty())) {
        (Some(path), false) => path.display().to_string(),
        (Some(path), true) => format!("{} with the keyword arguments", path.display()),
        (None, _) => "keyword arguments".into(),
    }
}

/// The table `name` of a config's table (empty when absent).
pub fn subtable(table: &Table, name: &str) -> Table {
    match table.get(name) {
        Some(Value::Table(inner)) => inner.clone(),
        _ => Table::new(),
    }
}

/// `overrides` laid over the `table` (a config table such as `[decode]`),
/// then read as `T`; `what` names it in errors.
pub fn with_overrides<T: serde::de::DeserializeOwned>(
    table: &Table,
    overrides: Option<&Bound<'_, PyDict>>,
    what: &str,
) -> PyResult<T> {
    let mut table = table.clone();
    if let Some(overrides) = overrides {
        lay_over(&mut table, json_of(overrides)?, what)?;
    }
    Value::Table(table)
        .try_into()
        .map_err(|e: toml::de::Error| ConfigError::new_err(format!("{what}: {}", e.message())))
}

fn json_of(dict: &Bound<'_, PyDict>) -> PyResult<Json> {
    pythonize::depythonize(dict.as_any())
        .map_err(|e| ConfigError::new_err(format!("keyword arguments: {e}")))
}

/// Lays `overrides` over `table` key by key, tables into tables; `None`
/// removes a key (TOML has no null: unset is its default). `path` names the
/// table in errors.
pub fn lay_over(table: &mut Table, overrides: Json, path: &str) -> PyResult<()> {
    let Json::Object(overrides) = overrides else {
        return Err(ConfigError::new_err(format!(
            "{path}: a table (dict) is expected"
        )));
    };
    for (key, value) in overrides {
        let name = if path.is_empty() {
            key.clone()
        } else {
            format!("{path}.{key}")
        };
        match value {
            Json::Null => {
                table.remove(&key);
            }
            Json::Object(_) => {
                let inner = table
                    .entry(key)
                    .or_insert_with(|| Value::Table(Table::new()));
                let Value::Table(inner) = inner else {
                    return Err(ConfigError::new_err(format!("{name}: not a table")));
                };
                lay_over(inner, value, &name)?;
            }
            value => {
                let value = Value::try_from(value)
                    .map_err(|e| ConfigError::new_err(format!("{name}: {e}")))?;
                table.insert(key, value);
            }
        }
    }
    Ok(())
}
