//! The inference service of `serve_model`: an HTTP API over the model of the run promoted to a
//! label (`production`), which follows the label without a restart.
//!
//! - `POST /predict` with `{"inputs": [x, …]}` answers `{"run_id": …, "outputs": [y, …]}`: the
//!   outputs of the model it serves, and which run's model that is.
//! - `GET /model` answers which run it serves: flow, label, run id, when and by whom it was
//!   promoted, when it was loaded.
//!
//! A background task asks the datastore every `poll` which run the label names (one read of the
//! label's pointer). When that changes, it loads the new run's model beside the one in service
//! and then swaps the two: a request holds the model it started with until it answers, so no
//! request is dropped or answered by half a model. A model that cannot be loaded is reported and
//! the service goes on with the one it has; a demotion leaves the last model in service (and says
//! so at `/model`), since answering nothing would be worse than answering with the model that was
//! in production a moment ago.
//!
//! Only the model's type (`Mlp`) and the datastore are needed: not the flow that trained it.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use blooming_flowers::burn::tensor::Device;
use blooming_flowers::burn_model::Model;
use blooming_flowers::client::{Client, ClientError};
use blooming_flowers::run::Promotion;
use serde::{Deserialize, Serialize};

use super::mlp::Mlp;

/// At most this many inputs in one request.
pub const MAX_INPUTS: usize = 100_000;

/// What the service serves and how it follows it.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The flow whose runs are promoted.
    pub flow: String,
    /// The label followed (`production`).
    pub label: String,
    /// The artifact of the run's `end` task that holds the model.
    pub artifact: String,
    /// How often the label is read.
    pub poll: Duration,
}

/// A model in service.
pub struct Served {
    /// The run it comes from.
    pub run_id: String,
    /// The promotion that put it in service.
    pub promotion: Promotion,
    /// When the service loaded it.
    pub loaded_at: SystemTime,
    model: Mlp,
}

/// The service's state: the model in service (none until a run is promoted), and what it knows
/// of the label.
pub struct Service {
    client: Client,
    settings: Settings,
    device: Device,
    served: RwLock<Option<Arc<Served>>>,
    /// The label's newest change, as last read, and the last failure to load or read.
    status: RwLock<LabelStatus>,
}

#[derive(Default, Clone)]
struct LabelStatus {
    newest: Option<Promotion>,
    problem: Option<String>,
}

impl Service {
    /// A service over `client`'s datastore; nothing is loaded until [`Service::refresh`].
    pub fn new(client: Client, settings: Settings) -> Arc<Service> {
        Arc::new(Service {
            client,
            settings,
            device: Device::flex(),
            served: RwLock::new(None),
            status: RwLock::new(LabelStatus::default()),
        })
    }

    /// The model in service, if any. A request keeps it as long as it needs it, even if another
    /// replaces it meanwhile.
    pub fn served(&self) -> Option<Arc<Served>> {
        self.served
            .read()
            .map_or_else(|e| e.into_inner().clone(), |s| s.clone())
    }

    /// Reads the label once and, if it names another run than the one in service, loads that
    /// run's model and puts it in service. Blocking: run it off the async threads. Returns the
    /// run now in service, if any.
    ///
    /// # Errors
    ///
    /// The label cannot be read, or the run's model cannot be loaded: the model in service, if
    /// any, stays.
    pub fn refresh(&self) -> Result<Option<String>, String> {
        let result = self.try_refresh();
        let mut status = self.status.write().unwrap_or_else(|e| e.into_inner());
        status.problem = result.as_ref().err().cloned();
        result
    }

    fn try_refresh(&self) -> Result<Option<String>, String> {
        let flow = self.client.flow(&self.settings.flow);
        let newest = flow
            .promotion(&self.settings.label)
            .map_err(|e| format!("cannot read the label `{}`: {e}", self.settings.label))?;
        self.status
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .newest = newest.clone();
        let current = self.served();
        let Some(promotion) = newest else {
            return Ok(current.map(|s| s.run_id.clone()));
        };
        let Some(run_id) = promotion.run_id.clone() else {
            // Demoted: the last model stays in service (see the module's doc).
            return Ok(current.map(|s| s.run_id.clone()));
        };
        if current.as_ref().is_some_and(|s| s.run_id == *run_id) {
            return Ok(Some(run_id.to_string()));
        }
        let model = load(&flow, &run_id, &self.settings.artifact)
            .map_err(|e| format!("cannot load the model of run {run_id}: {e}"))?;
        let served = Arc::new(Served {
            run_id: run_id.to_string(),
            promotion,
            loaded_at: SystemTime::now(),
            model,
        });
        *self.served.write().unwrap_or_else(|e| e.into_inner()) = Some(served);
        Ok(Some(run_id.to_string()))
    }
}

/// The model artifact `artifact` of run `run_id`'s final state.
fn load(
    flow: &blooming_flowers::client::FlowHandle<'_>,
    run_id: &str,
    artifact: &str,
) -> Result<Mlp, String> {
    let model: Model<Mlp> = flow
        .run(run_id)
        .and_then(|run| run.artifact(artifact))
        .map_err(|e: ClientError| e.to_string())?;
    model.into_module().map_err(|e| e.to_string())
}

/// The service's routes.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/predict", post(predict))
        .route("/model", get(model))
        .with_state(service)
}

/// Serves until Ctrl-C on `address`, following the label; prints where it listens, and each
/// model it puts in service, on stdout.
///
/// # Errors
///
/// The address cannot be bound, the server fails.
pub async fn serve(service: Arc<Service>, address: SocketAddr) -> Result<(), String> {
    let listener = tokio::net::TcpListener::bind(address)
        .await
        .map_err(|e| format!("cannot listen on {address}: {e}"))?;
    serve_on(service, listener).await
}

/// [`serve`] on a socket already bound.
///
/// # Errors
///
/// The server fails.
pub async fn serve_on(
    service: Arc<Service>,
    listener: tokio::net::TcpListener,
) -> Result<(), String> {
    let bound = listener
        .local_addr()
        .map_err(|e| format!("cannot tell the address listened on: {e}"))?;
    println!("serve_model: listening on http://{bound}/");
    tokio::spawn(follow(Arc::clone(&service)));
    axum::serve(listener, router(service))
        .with_graceful_shutdown(async {
            if tokio::signal::ctrl_c().await.is_err() {
                std::future::pending::<()>().await;
            }
        })
        .await
        .map_err(|e| format!("the server stopped: {e}"))
}

/// Reads the label every `poll`, for as long as the service runs.
pub async fn follow(service: Arc<Service>) {
    let mut shown: Option<String> = None;
    let mut reported: Option<String> = None;
    loop {
        let worker = Arc::clone(&service);
        match tokio::task::spawn_blocking(move || worker.refresh()).await {
            Ok(Ok(serving)) => {
                reported = None;
                if serving != shown {
                    if let Some(served) = service.served() {
                        println!(
                            "serve_model: serving run {} of {} ({} as {} by {} at {})",
                            served.run_id,
                            service.settings.flow,
                            served.promotion.action,
                            service.settings.label,
                            served.promotion.user,
                            served.promotion.at,
                        );
                    }
                    shown = serving;
                }
            }
            Ok(Err(problem)) => {
                // Said once, not at every poll.
                if reported.as_ref() != Some(&problem) {
                    eprintln!("serve_model: {problem}");
                    reported = Some(problem);
                }
            }
            Err(e) => eprintln!("serve_model: the label's reader stopped: {e}"),
        }
        tokio::time::sleep(service.settings.poll).await;
    }
}

/// A request of `POST /predict`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PredictRequest {
    /// The model's inputs.
    pub inputs: Vec<f32>,
}

/// An answer of `POST /predict`.
#[derive(Debug, Serialize, Deserialize)]
pub struct PredictResponse {
    /// The run whose model answered.
    pub run_id: String,
    /// One output per input.
    pub outputs: Vec<f32>,
}

/// An answer of `GET /model`.
#[derive(Debug, Serialize, Deserialize)]
pub struct ModelResponse {
    pub flow: String,
    pub label: String,
    /// The run whose model is in service; `null` before any was loaded.
    pub run_id: Option<String>,
    /// The artifact the model was read from.
    pub artifact: String,
    /// Who promoted it, and when.
    pub promoted_by: Option<String>,
    pub promoted_at: Option<String>,
    /// When the service loaded it (RFC 3339).
    pub loaded_at: Option<String>,
    /// The run the label names now, if that is not the one in service (a load in progress or
    /// failed; `null` after a demotion).
    pub label_names: Option<String>,
    /// Why the label cannot be followed now, if it cannot.
    pub problem: Option<String>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

async fn predict(
    State(service): State<Arc<Service>>,
    request: Result<Json<PredictRequest>, axum::extract::rejection::JsonRejection>,
) -> Response {
    let Json(request) = match request {
        Ok(request) => request,
        Err(rejection) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "expected {{\"inputs\": [numbers]}}: {}",
                    rejection.body_text()
                ),
            );
        }
    };
    if request.inputs.len() > MAX_INPUTS {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "{} inputs: at most {MAX_INPUTS} per request",
                request.inputs.len()
            ),
        );
    }
    if let Some(position) = request.inputs.iter().position(|x| !x.is_finite()) {
        return error(
            StatusCode::BAD_REQUEST,
            format!("input {position} is not a finite number"),
        );
    }
    let Some(served) = service.served() else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "no model yet: no run of {} is promoted as {}",
                service.settings.flow, service.settings.label
            ),
        );
    };
    let device = service.device.clone();
    // The forward pass is CPU work: off the threads that serve connections.
    let answer = tokio::task::spawn_blocking(move || PredictResponse {
        outputs: served.model.predict(&request.inputs, &device),
        run_id: served.run_id.clone(),
    })
    .await;
    match answer {
        Ok(answer) => Json(answer).into_response(),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the prediction failed: {e}"),
        ),
    }
}

async fn model(State(service): State<Arc<Service>>) -> Response {
    let served = service.served();
    let status = service
        .status
        .read()
        .map_or_else(|e| e.into_inner().clone(), |s| s.clone());
    let newest = status.newest.as_ref().and_then(|p| p.run_id.as_deref());
    let label_names = match (&served, newest) {
        (Some(served), Some(newest)) if served.run_id == newest => None,
        (_, newest) => newest.map(str::to_owned),
    };
    let response = ModelResponse {
        flow: service.settings.flow.clone(),
        label: service.settings.label.clone(),
        run_id: served.as_ref().map(|s| s.run_id.clone()),
        artifact: service.settings.artifact.clone(),
        promoted_by: served.as_ref().map(|s| s.promotion.user.clone()),
        promoted_at: served.as_ref().map(|s| s.promotion.at.clone()),
        loaded_at: served
            .as_ref()
            .map(|s| humantime::format_rfc3339_millis(s.loaded_at).to_string()),
        label_names,
        problem: status.problem,
    };
    let code = if served.is_some() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(response)).into_response()
}
