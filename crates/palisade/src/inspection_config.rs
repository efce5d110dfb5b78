//! `[inspection]` in `palisade.toml`: the request inspector behind
//! `POST /v1/inspect`. The section is
//! [`InspectConfig`](palisade_guard::inspect::InspectConfig) itself:
//!
//! ```toml
//! [inspection]
//! sensitivity = 1          # 1 to 3, like the Core Rule Set's paranoia levels
//! flag_threshold = 3
//! block_threshold = 5
//! [[inspection.exclusions]]
//! route = "/api/posts/*"
//! locations = ["body.content"]
//! categories = ["xss"]
//! ```

use crate::config::ConfigError;
use palisade_guard::GuardError;
use palisade_guard::inspect::{InspectConfig, Inspector};

/// Checks `[inspection]` and builds its inspector; errors name the key
/// (`inspection.block_threshold`).
pub fn inspector(config: &InspectConfig) -> Result<Inspector, ConfigError> {
    Inspector::new(config.clone()).map_err(|e| match e {
        GuardError::Invalid { field, reason } => ConfigError::Invalid {
            key: format!("inspection.{field}"),
            message: reason,
        },
        other => ConfigError::Invalid {
            key: "inspection".into(),
            message: other.to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use palisade_guard::inspect::{Category, Sensitivity};

    #[test]
    fn reads_the_section_with_exclusions() {
        let config: InspectConfig = toml::from_str(
            r#"
            sensitivity = 2
            [[exclusions]]
            route = "/api/posts/*"
            locations = ["body.content"]
            categories = ["xss"]
            "#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(config.sensitivity, Sensitivity::Medium);
        assert_eq!(config.exclusions[0].categories, [Category::Xss]);
        assert!(inspector(&config).is_ok());
    }

    #[test]
    fn invalid_settings_name_the_key() {
        let config: InspectConfig = toml::from_str("flag_threshold = 6\nblock_threshold = 5")
            .unwrap_or_else(|e| panic!("{e}"));
        match inspector(&config) {
            Err(ConfigError::Invalid { key, .. }) => assert_eq!(key, "inspection.block_threshold"),
            other => panic!("{other:?}"),
        }
        assert!(toml::from_str::<InspectConfig>("sensitivity = 4").is_err());
        assert!(toml::from_str::<InspectConfig>("paranoia = 1").is_err());
    }
}
