//! The transducer heads: NeMo's prediction network (an embedding and an
//! LSTM stack over the tokens emitted so far), the joint network combining
//! one encoder frame with the prediction, and greedy TDT and RNN-T decoding
//! as parakeet-mlx runs them.

use mlx::Array;

use super::config::{DecoderConfig, Head, JointConfig, ParakeetConfig, PredictionConfig};
use super::{entropy_confidence, single_utterance, DecodedToken, HeadError};
use crate::nn::{Embedding, Linear, Lstm, LstmState};
use crate::weights::{WeightError, Weights};

/// Tokens one frame may emit when the config does not say (the value
/// NeMo's configs ship; parakeet-mlx would then never move on).
const DEFAULT_MAX_SYMBOLS: usize = 10;

/// The prediction network: a token embedding feeding a stack of LSTMs.
#[derive(Debug, Clone)]
pub struct PredictionNetwork {
    embed: Embedding,
    layers: Vec<Lstm>,
    hidden: i32,
}

/// The prediction network after some tokens: its output `[1, 1, H]` and
/// each layer's state.
#[derive(Debug, Clone)]
pub struct PredictionState {
    pub output: Array,
    pub layers: Vec<LstmState>,
}

impl PredictionNetwork {
    /// Loads `{prefix}.embed.weight` and `{prefix}.dec_rnn.lstm.{i}.{Wx,Wh,bias}`
    /// (MLX's LSTM: `Wx` `[4H, in]`, `Wh` `[4H, H]`, one bias, gates in
    /// PyTorch's input, forget, cell, output order).
    pub fn load(
        w: &Weights,
        prefix: &str,
        config: &PredictionConfig,
    ) -> Result<PredictionNetwork, WeightError> {
        let hidden = config.prednet.pred_hidden;
        // With blank as padding the table has a row for blank, never read:
        // the start of a sequence is a zero vector instead.
        let rows = config.vocab_size + i32::from(config.blank_as_pad);
        let embed = Embedding::load(w, &format!("{prefix}.embed"), rows, hidden)?;
        let layers = (0..config.prednet.pred_rnn_layers)
            .map(|i| {
                let name = format!("{prefix}.dec_rnn.lstm.{i}");
                Ok(Lstm {
                    weight_ih: w.get_shaped(&format!("{name}.Wx"), &[4 * hidden, hidden])?,
                    weight_hh: w.get_shaped(&format!("{name}.Wh"), &[4 * hidden, hidden])?,
                    bias: w.get_shaped(&format!("{name}.bias"), &[4 * hidden])?,
                    hidden,
                })
            })
            .collect::<Result<_, WeightError>>()?;
        Ok(PredictionNetwork {
            embed,
            layers,
            hidden,
        })
    }

    /// Feeds `token` (`None`: the start of the utterance, a zero vector)
    /// after `state` (`None`: zero state).
    pub fn step(
        &self,
        token: Option<u32>,
        state: Option<&PredictionState>,
    ) -> mlx::Result<PredictionState> {
        let mut x = match token {
            Some(id) => self.embed.forward(&Array::from_slice(&[id], &[1, 1])?)?,
            None => Array::zeros(&[1, 1, self.hidden], mlx::Dtype::F32)?,
        };
        let mut layers = Vec::with_capacity(self.layers.len());
        for (i, lstm) in self.layers.iter().enumerate() {
            let (y, next) = lstm.forward(&x, state.map(|s| &s.layers[i]), false)?;
            x = y;
            layers.push(next);
        }
        Ok(PredictionState { output: x, layers })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Activation {
    Relu,
    Tanh,
    Sigmoid,
}

/// The joint network: `out(act(enc(e) + pred(p)))`, logits over the
/// vocabulary and blank, then (TDT) over the durations.
#[derive(Debug, Clone)]
pub struct JointNetwork {
    enc: Linear,
    pred: Linear,
    out: Linear,
    activation: Activation,
}

impl JointNetwork {
    /// Loads `{prefix}.enc`, `{prefix}.pred` and `{prefix}.joint_net.2`.
    pub fn load(
        w: &Weights,
        prefix: &str,
        config: &JointConfig,
    ) -> Result<JointNetwork, HeadError> {
        let net = &config.jointnet;
        let activation = match net.activation.to_lowercase().as_str() {
            "relu" => Activation::Relu,
            "tanh" => Activation::Tanh,
            "sigmoid" => Activation::Sigmoid,
            other => {
                return Err(HeadError::Config(format!(
                    "joint.jointnet.activation {other:?} is not relu, tanh or sigmoid"
                )))
            }
        };
        let classes = config.num_classes + 1 + config.num_extra_outputs;
        let load = |name: &str, input, output| {
            Linear::load(w, &format!("{prefix}.{name}"), input, output, true)
        };
        Ok(JointNetwork {
            enc: load("enc", net.encoder_hidden, net.joint_hidden)?,
            pred: load("pred", net.pred_hidden, net.joint_hidden)?,
            out: load("joint_net.2", net.joint_hidden, classes)?,
            activation,
        })
    }

    /// The encoder side's projection, computed once for all frames.
    pub fn project_encoder(&self, encoded: &Array) -> mlx::Result<Array> {
        self.enc.forward(encoded)
    }

    /// The prediction side's projection, computed once per emitted token.
    pub fn project_prediction(&self, prediction: &Array) -> mlx::Result<Array> {
        self.pred.forward(prediction)
    }

    /// Logits from both sides' projections (broadcast against each other).
    pub fn combine(&self, encoder: &Array, prediction: &Array) -> mlx::Result<Array> {
        let sum = encoder.add(prediction)?;
        let activated = match self.activation {
            Activation::Relu => sum.max_scalar(0.0)?,
            Activation::Tanh => sum.tanh()?,
            Activation::Sigmoid => sum.sigmoid()?,
        };
        self.out.forward(&activated)
    }

    /// Logits of encoder frame(s) `encoded` with prediction output `prediction`.
    pub fn forward(&self, encoded: &Array, prediction: &Array) -> mlx::Result<Array> {
        self.combine(
            &self.project_encoder(encoded)?,
            &self.project_prediction(prediction)?,
        )
    }
}

/// A transducer's decoding heads: prediction and joint networks, and
/// what a step's output means.
#[derive(Debug, Clone)]
pub struct Transducer {
    pub prediction: PredictionNetwork,
    pub joint: JointNetwork,
    /// The blank's id: the vocabulary's size.
    pub blank: u32,
    /// TDT's frame advances, indexed by the duration logits' argmax; `None`
    /// for RNN-T.
    pub durations: Option<Vec<usize>>,
    /// Tokens one frame may emit before decoding moves on.
    pub max_symbols: usize,
}

/// What one step of greedy decoding chose.
struct Step {
    token: u32,
    /// The duration head's choice (0 for RNN-T).
    decision: usize,
    confidence: f32,
}

impl Transducer {
    /// Loads `decoder.prediction.*` and `joint.*` of a transducer's folder.
    pub fn load(w: &Weights, config: &ParakeetConfig) -> Result<Transducer, HeadError> {
        let DecoderConfig::Prediction(prediction) = &config.decoder else {
            return Err(HeadError::Config(
                "a transducer needs a prediction-network decoder section".into(),
            ));
        };
        let joint = config
            .joint
            .as_ref()
            .ok_or_else(|| HeadError::Config("a transducer needs a joint section".into()))?;
        let durations = match config.head().map_err(HeadError::Config)? {
            Head::Tdt { durations } => {
                if durations.len() != joint.num_extra_outputs as usize {
                    return Err(HeadError::Config(format!(
                        "{} TDT durations but joint.num_extra_outputs is {}",
                        durations.len(),
                        joint.num_extra_outputs
                    )));
                }
                Some(durations.iter().map(|&d| d as usize).collect())
            }
            Head::Rnnt => None,
            Head::Ctc => {
                return Err(HeadError::Config(
                    "a CTC model has no transducer head".into(),
                ))
            }
        };
        let max_symbols = config
            .decoding
            .as_ref()
            .and_then(|d| d.greedy.as_ref())
            .and_then(|g| g.max_symbols)
            .map_or(DEFAULT_MAX_SYMBOLS, |m| m.max(1) as usize);
        Ok(Transducer {
            prediction: PredictionNetwork::load(w, "decoder.prediction", prediction)?,
            joint: JointNetwork::load(w, "joint", joint)?,
            blank: joint.num_classes as u32,
            durations,
            max_symbols,
        })
    }

    /// Greedy decoding of one utterance's encoder output `[1, T, d]`, as
    /// parakeet-mlx's: at each step the joint of the current frame and the
    /// prediction after the tokens so far gives a token (kept unless blank;
    /// only a kept token advances the prediction network) and, for TDT, a
    /// number of frames to advance; RNN-T advances one frame on blank. A
    /// frame emitting `max_symbols` tokens without advancing moves on by one.
    /// A blank that does not advance moves on by one at once: nothing
    /// changed, so every later step there would choose it again.
    pub fn decode_greedy(&self, encoded: &Array) -> mlx::Result<Vec<DecodedToken>> {
        let frames = single_utterance(encoded)?;
        let length = frames.dim(0)? as usize;
        let encoder = self.joint.project_encoder(&frames)?;
        encoder.eval()?;
        let mut state = self.prediction.step(None, None)?;
        let mut prediction = self.joint.project_prediction(&state.output)?;
        let mut tokens = Vec::new();
        let (mut frame, mut symbols) = (0, 0);
        while frame < length {
            let at = encoder.slice_axis(0, frame as i32, frame as i32 + 1)?;
            let step = self.choose(&self.joint.combine(&at, &prediction)?)?;
            let (span, advance) = match &self.durations {
                Some(durations) => {
                    let d = *durations.get(step.decision).ok_or_else(|| {
                        mlx::Error::Mlx(format!("duration index {} out of range", step.decision))
                    })?;
                    (d, d)
                }
                None => (1, usize::from(step.token == self.blank)),
            };
            if step.token != self.blank {
                tokens.push(DecodedToken {
                    id: step.token,
                    start_frame: frame,
                    frames: span,
                    confidence: step.confidence,
                });
                state = self.prediction.step(Some(step.token), Some(&state))?;
                prediction = self.joint.project_prediction(&state.output)?;
                symbols += 1;
            }
            frame += advance;
            if advance > 0 {
                symbols = 0;
            } else if step.token == self.blank || symbols >= self.max_symbols {
                frame += 1;
                symbols = 0;
            }
        }
        Ok(tokens)
    }

    /// The token, duration choice and confidence of one step's logits `[1, C]`.
    fn choose(&self, logits: &Array) -> mlx::Result<Step> {
        let classes = self.blank as i32 + 1;
        let token_logits = logits.slice_axis(-1, 0, classes)?;
        let token = token_logits.argmax(-1, false)?;
        let confidence = entropy_confidence(&token_logits.softmax(&[-1], true)?)?;
        let decision = match self.durations {
            Some(_) => {
                let total = logits.dim(-1)?;
                logits.slice_axis(-1, classes, total)?.argmax(-1, false)?
            }
            None => Array::zeros(&[1], mlx::Dtype::U32)?,
        };
        mlx::eval(&[&token, &decision, &confidence])?;
        Ok(Step {
            token: token.astype(mlx::Dtype::U32)?.item::<u32>()?,
            decision: decision.astype(mlx::Dtype::U32)?.item::<u32>()? as usize,
            confidence: confidence.item::<f32>()?,
        })
    }
}
