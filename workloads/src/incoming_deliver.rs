//! `incoming.deliver`: the MX's side of the mail pipeline. N mails are PUT into the user's
//! incoming box (`/incoming/{user}/{id}` on the server's services listener), `concurrency`
//! at a time, as a delivery agent does; the server stores each one flagged PENDING.

use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::{StreamExt, TryStreamExt};

use crate::{Context, Leftovers, MX_SERVICE, Params, Prepared, Work, WorkloadError, blobs, payload};
use crate::spec::{Extra, Shape, Spec};

/// `incoming.deliver`'s contract with the harness.
pub(crate) const SPEC: Spec = Spec {
    name: "incoming.deliver",
    // 2: the MX's client and its connections are dropped after the measured part, so that
    // the server's side of closing them is not counted in the round.
    version: 2,
    needs_server: true,
    needs_services: true,
    headline_metric: "wall_s",
    shape: Shape::BASE,
    extras: &[Extra::Throughput],
    describe: |_, w| {
        format!(
            "The MX delivers {} into a user's incoming box through the server's services listener, {}.",
            w.of, w.at_once
        )
    },
    prepare: |params, ctx| Box::pin(async move { Ok(Prepared::new(Deliver::prepare(params, ctx)?.run())) }),
};

/// Time one delivery may take before it counts as failed: a 25 MB mail on loopback takes
/// well under a second.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(120);

/// The delivery agent: an HTTP client authenticated as [`MX_SERVICE`].
pub(crate) struct Mx {
    http: reqwest::Client,
    /// `{services}/incoming/{user}/`; ids are appended.
    base: String,
    authorization: String,
}

impl Mx {
    pub(crate) fn new(ctx: &Context) -> Result<Self, WorkloadError> {
        let target = ctx.target()?;
        let services = ctx.services()?;
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .timeout(DELIVERY_TIMEOUT)
            .build()
            .map_err(|e| WorkloadError::Invalid(format!("cannot build the delivery client: {e}")))?;
        let credentials = base64::engine::general_purpose::STANDARD.encode(format!("{MX_SERVICE}:{}", services.token));
        Ok(Self {
            http,
            base: format!("{}/incoming/{}/", services.url.trim_end_matches('/'), target.user),
            authorization: format!("Token {credentials}"),
        })
    }

    /// Delivers one mail; only a 200 (stored and flagged PENDING) counts.
    pub(crate) async fn deliver(&self, id: &str, mail: Vec<u8>) -> Result<(), WorkloadError> {
        let failed = |problem: String| WorkloadError::Delivery {
            id: id.to_owned(),
            problem,
        };
        let response = self
            .http
            .put(format!("{}{id}", self.base))
            .header(reqwest::header::AUTHORIZATION, &self.authorization)
            .body(mail)
            .send()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        if status != reqwest::StatusCode::OK {
            let body = response.text().await.unwrap_or_default();
            return Err(failed(format!("the server answered {status}: {}", body.trim())));
        }
        Ok(())
    }

    /// Delivers every mail, `concurrency` at a time, returning each delivery's latency.
    pub(crate) async fn deliver_all(
        &self,
        mails: Vec<(String, Vec<u8>)>,
        concurrency: usize,
    ) -> Result<Vec<Duration>, WorkloadError> {
        futures::stream::iter(mails)
            .map(|(id, mail)| async move {
                let t = Instant::now();
                self.deliver(&id, mail).await?;
                Ok::<_, WorkloadError>(t.elapsed())
            })
            .buffer_unordered(concurrency.max(1))
            .try_collect()
            .await
    }
}

/// The mails of a round: ids unique across rounds and runs, sizes and bytes from the seed.
pub(crate) fn mails(params: &Params, ctx: &Context) -> Vec<(String, Vec<u8>)> {
    blobs(params, ctx, &format!("{}r{}m", payload::nonce(), ctx.round))
}

pub struct Deliver {
    mx: Mx,
    mails: Vec<(String, Vec<u8>)>,
    concurrency: usize,
}

impl Deliver {
    pub(crate) fn prepare(params: &Params, ctx: &Context) -> Result<Self, WorkloadError> {
        Ok(Self {
            mx: Mx::new(ctx)?,
            mails: mails(params, ctx),
            concurrency: params.concurrency as usize,
        })
    }

    pub(crate) async fn run(self) -> Result<Work, WorkloadError> {
        let bytes: u64 = self.mails.iter().map(|(_, m)| m.len() as u64).sum();
        let times = self.mx.deliver_all(self.mails, self.concurrency).await?;
        Ok(Work {
            leftovers: Leftovers::new(self.mx),
            ..Work::timed(bytes, times)
        })
    }
}
