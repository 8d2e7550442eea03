//! The JSON of `POST /v1/translate`: a request read field by field, so every refusal names
//! the field at fault, and the answer's shape.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::config::{LengthPenalty, SearchConfig, MAX_LEN_RATIO_LIMIT};
use crate::inference::Translation;

/// The widest beam a request may ask for: search time and memory grow with it.
pub const MAX_BEAM: usize = 64;

/// What a request may ask for, set by `nmt serve`'s flags.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Texts in one request.
    pub max_texts: usize,
    /// Characters in one text.
    pub max_text_chars: usize,
}

/// A valid translation request.
#[derive(Debug, Clone, PartialEq)]
pub struct TranslateRequest {
    /// Index of the model in the server's list.
    pub model: usize,
    pub texts: Vec<String>,
    pub search: SearchConfig,
}

/// A refused request: the field at fault (None for the body as a whole) and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FieldError {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        FieldError {
            field: Some(field.to_string()),
            message: message.into(),
        }
    }

    pub fn body(message: impl Into<String>) -> Self {
        FieldError {
            field: None,
            message: message.into(),
        }
    }
}

const FIELDS: [&str; 9] = [
    "text",
    "texts",
    "model",
    "beam",
    "n_best",
    "max_len_ratio",
    "min_len",
    "length_penalty",
    "length_alpha",
];

/// Reads a request body. `models` are the served models' names (the first is the default);
/// `defaults` the server's search settings, which the request's fields override.
pub fn parse_request(
    body: &[u8],
    models: &[String],
    defaults: &SearchConfig,
    limits: &Limits,
) -> Result<TranslateRequest, FieldError> {
    let value: Value = serde_json::from_slice(body).map_err(|e| {
        FieldError::body(format!(
            "the body is not valid JSON ({e}); send an object such as {{\"text\": \"Ein Hund.\"}}"
        ))
    })?;
    let Value::Object(obj) = value else {
        return Err(FieldError::body(
            "the body must be a JSON object such as {\"text\": \"Ein Hund.\"}",
        ));
    };
    if let Some(unknown) = obj.keys().find(|k| !FIELDS.contains(&k.as_str())) {
        return Err(FieldError::new(
            unknown,
            format!("unknown field; the fields are {}", FIELDS.join(", ")),
        ));
    }
    let texts = texts(&obj, limits)?;
    let model = match obj.get("model") {
        None | Some(Value::Null) => 0,
        Some(Value::String(name)) => models.iter().position(|m| m == name).ok_or_else(|| {
            FieldError::new(
                "model",
                format!(
                    "no model {name:?} is served; GET /v1/models lists them ({})",
                    models.join(", ")
                ),
            )
        })?,
        Some(_) => {
            return Err(FieldError::new(
                "model",
                "must be a string (a name from GET /v1/models)",
            ))
        }
    };
    let mut search = defaults.clone();
    search.n_best = 1;
    if let Some(beam) = count(&obj, "beam")? {
        if beam == 0 || beam > MAX_BEAM {
            return Err(FieldError::new(
                "beam",
                format!("must be between 1 (greedy) and {MAX_BEAM}, got {beam}"),
            ));
        }
        search.beam = beam;
    }
    if let Some(n) = count(&obj, "n_best")? {
        if n == 0 || n > search.beam {
            return Err(FieldError::new(
                "n_best",
                format!(
                    "must be between 1 and the beam width ({}), got {n}",
                    search.beam
                ),
            ));
        }
        search.n_best = n;
    }
    if let Some(n) = count(&obj, "min_len")? {
        search.min_len = n;
    }
    if let Some(ratio) = number(&obj, "max_len_ratio")? {
        if !(ratio > 0.0 && ratio <= MAX_LEN_RATIO_LIMIT as f64) {
            return Err(FieldError::new(
                "max_len_ratio",
                format!("must be above 0 and at most {MAX_LEN_RATIO_LIMIT}, got {ratio}"),
            ));
        }
        search.max_len_ratio = ratio as f32;
    }
    if let Some(alpha) = number(&obj, "length_alpha")? {
        if !(0.0..=10.0).contains(&alpha) {
            return Err(FieldError::new(
                "length_alpha",
                format!("must be between 0 and 10, got {alpha}"),
            ));
        }
        search.length_alpha = alpha as f32;
    }
    match obj.get("length_penalty") {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) => {
            search.length_penalty = match s.as_str() {
                "none" => LengthPenalty::None,
                "average" => LengthPenalty::Average,
                "gnmt" => LengthPenalty::Gnmt,
                _ => {
                    return Err(FieldError::new(
                        "length_penalty",
                        format!("must be \"none\", \"average\" or \"gnmt\", got {s:?}"),
                    ))
                }
            }
        }
        Some(_) => {
            return Err(FieldError::new(
                "length_penalty",
                "must be \"none\", \"average\" or \"gnmt\"",
            ))
        }
    }
    Ok(TranslateRequest {
        model,
        texts,
        search,
    })
}

/// The texts of `text` (one) or `texts` (a list): exactly one of the two, within `limits`.
fn texts(obj: &Map<String, Value>, limits: &Limits) -> Result<Vec<String>, FieldError> {
    let texts = match (obj.get("text"), obj.get("texts")) {
        (Some(_), Some(_)) => {
            return Err(FieldError::body(
                "give either \"text\" (one string) or \"texts\" (a list), not both",
            ))
        }
        (None, None) => {
            return Err(FieldError::new(
                "text",
                "is missing: send {\"text\": \"...\"} or {\"texts\": [\"...\", ...]}",
            ))
        }
        (Some(Value::String(s)), None) => vec![(s.clone(), "text".to_string())],
        (Some(_), None) => return Err(FieldError::new("text", "must be a string")),
        (None, Some(Value::Array(list))) => {
            if list.is_empty() {
                return Err(FieldError::new("texts", "is empty: give at least one text"));
            }
            if list.len() > limits.max_texts {
                return Err(FieldError::new(
                    "texts",
                    format!(
                        "has {} texts; this server takes at most {} per request: send several requests",
                        list.len(),
                        limits.max_texts
                    ),
                ));
            }
            list.iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok((s.clone(), format!("texts[{i}]"))),
                    _ => Err(FieldError::new(&format!("texts[{i}]"), "must be a string")),
                })
                .collect::<Result<_, _>>()?
        }
        (None, Some(_)) => return Err(FieldError::new("texts", "must be a list of strings")),
    };
    texts
        .into_iter()
        .map(|(text, field)| {
            let chars = text.chars().count();
            if chars > limits.max_text_chars {
                Err(FieldError::new(
                    &field,
                    format!(
                        "has {chars} characters; this server takes at most {} per text (--max-text-chars)",
                        limits.max_text_chars
                    ),
                ))
            } else {
                Ok(text)
            }
        })
        .collect()
}

/// An optional non-negative integer field.
fn count(obj: &Map<String, Value>, field: &str) -> Result<Option<usize>, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .map(|n| Some(n.min(usize::MAX as u64) as usize))
            .ok_or_else(|| FieldError::new(field, format!("must be a whole number >= 0, got {v}"))),
    }
}

/// An optional number field.
fn number(obj: &Map<String, Value>, field: &str) -> Result<Option<f64>, FieldError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .map(Some)
            .ok_or_else(|| FieldError::new(field, format!("must be a number, got {v}"))),
    }
}

/// One hypothesis in an answer.
#[derive(Debug, Clone, Serialize)]
pub struct Hypothesis {
    pub text: String,
    /// The ranking score (log-probability over the length penalty); null when -inf.
    pub score: Option<f32>,
    pub log_prob: Option<f32>,
    /// Output subwords.
    pub tokens: usize,
}

/// The answer for one text: the best translation, and all n-best hypotheses best first.
#[derive(Debug, Clone, Serialize)]
pub struct TextAnswer {
    pub text: String,
    pub score: Option<f32>,
    pub hypotheses: Vec<Hypothesis>,
}

/// The body of a successful `POST /v1/translate`.
#[derive(Debug, Clone, Serialize)]
pub struct TranslateResponse {
    pub model: String,
    pub translations: Vec<TextAnswer>,
}

impl TranslateResponse {
    pub fn new(model: &str, results: Vec<Vec<Translation>>) -> Self {
        let finite = |x: f32| x.is_finite().then_some(x);
        let translations = results
            .into_iter()
            .map(|hyps| {
                let hypotheses: Vec<Hypothesis> = hyps
                    .into_iter()
                    .map(|h| Hypothesis {
                        text: h.text,
                        score: finite(h.score),
                        log_prob: finite(h.log_prob),
                        tokens: h.tokens,
                    })
                    .collect();
                TextAnswer {
                    text: hypotheses[0].text.clone(),
                    score: hypotheses[0].score,
                    hypotheses,
                }
            })
            .collect();
        TranslateResponse {
            model: model.to_string(),
            translations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(body: &str) -> Result<TranslateRequest, FieldError> {
        let limits = Limits {
            max_texts: 3,
            max_text_chars: 10,
        };
        parse_request(
            body.as_bytes(),
            &["a".into(), "b".into()],
            &SearchConfig::default(),
            &limits,
        )
    }

    fn field(body: &str) -> Option<String> {
        parse(body).unwrap_err().field
    }

    #[test]
    fn fields_override_the_server_defaults() {
        let r = parse(r#"{"texts": ["x", "y"], "model": "b", "beam": 3, "n_best": 2, "length_penalty": "gnmt", "length_alpha": 0.6, "max_len_ratio": 1.5}"#).unwrap();
        assert_eq!(r.texts, ["x", "y"]);
        assert_eq!(r.model, 1);
        assert_eq!((r.search.beam, r.search.n_best), (3, 2));
        assert_eq!(r.search.length_penalty, LengthPenalty::Gnmt);
        assert_eq!((r.search.length_alpha, r.search.max_len_ratio), (0.6, 1.5));
        let r = parse(r#"{"text": "x"}"#).unwrap();
        assert_eq!((r.model, r.search.beam, r.search.n_best), (0, 5, 1));
    }

    #[test]
    fn every_refusal_names_its_field() {
        assert_eq!(
            field(r#"{"text": "x", "beam": 0}"#).as_deref(),
            Some("beam")
        );
        assert_eq!(
            field(r#"{"text": "x", "beam": 65}"#).as_deref(),
            Some("beam")
        );
        assert_eq!(
            field(r#"{"text": "x", "beam": "5"}"#).as_deref(),
            Some("beam")
        );
        assert_eq!(
            field(r#"{"text": "x", "beam": 2, "n_best": 3}"#).as_deref(),
            Some("n_best")
        );
        assert_eq!(
            field(r#"{"text": "x", "max_len_ratio": 0}"#).as_deref(),
            Some("max_len_ratio")
        );
        assert_eq!(
            field(r#"{"text": "x", "length_penalty": "x"}"#).as_deref(),
            Some("length_penalty")
        );
        assert_eq!(
            field(r#"{"text": "x", "model": "c"}"#).as_deref(),
            Some("model")
        );
        assert_eq!(field(r#"{"text": 5}"#).as_deref(), Some("text"));
        assert_eq!(field(r#"{}"#).as_deref(), Some("text"));
        assert_eq!(field(r#"{"texts": []}"#).as_deref(), Some("texts"));
        assert_eq!(
            field(r#"{"texts": ["a", "b", "c", "d"]}"#).as_deref(),
            Some("texts")
        );
        assert_eq!(field(r#"{"texts": ["a", 1]}"#).as_deref(), Some("texts[1]"));
        assert_eq!(
            field(r#"{"texts": ["a", "01234567890"]}"#).as_deref(),
            Some("texts[1]")
        );
        assert_eq!(
            field(r#"{"text": "x", "beem": 2}"#).as_deref(),
            Some("beem")
        );
        assert_eq!(field(r#"{"text": "x", "texts": ["y"]}"#), None);
        assert_eq!(field(r#"[1]"#), None);
        assert!(parse("{").unwrap_err().message.contains("not valid JSON"));
    }
}
