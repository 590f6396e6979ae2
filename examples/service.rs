//! Service: solostate as the state actor inside an inventory service.
//!
//! What it shows:
//!
//! * a domain event of your own (`Inventory`: restock, reserve, release,
//!   ship) with a typed rejection (`InventoryRejection`);
//! * a service struct wrapping an [`Engine`] and a [`Reader`], whose async
//!   methods are what a web or RPC handler would call. Writes return the
//!   event's sequence number as a *consistency token*; a later read that
//!   passes the token uses [`Reader::wait_for`] and so always sees that
//!   write (read-your-writes), even from another task or handler;
//! * concurrent customers racing for the last units: the engine applies
//!   their reservations one at a time, so stock never goes negative and
//!   the losers get `OutOfStock` instead of a lost update;
//! * an audit-log task fed by the change feed ([`Reader::changes`]), which
//!   receives every committed event exactly once, in sequence order;
//! * a graceful [`Engine::shutdown`]: queued events are answered, the audit
//!   feed closes after the last one, and later calls get a clear error.
//!
//! Run it from the workspace root:
//!
//! ```text
//! cargo run --release --example service
//! ```

#![forbid(unsafe_code)]
#![warn(missing_docs)]

use std::fmt;

use serde::{Deserialize, Serialize};
use solostate::{ChangeError, Engine, Event, OpenError, Reader, SubmitError, Txn};

/// A stock-keeping unit: the key of the map.
type Sku = String;

/// The stock of one SKU: the value of the map.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Stock {
    /// Units on the shelf that nobody has reserved.
    available: u32,
    /// Units reserved by orders and not yet shipped.
    reserved: u32,
}

/// The commands of the inventory. Each applies fully or is rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Inventory {
    /// Put `qty` units on the shelf (creates the SKU if new).
    Restock { sku: Sku, qty: u32 },
    /// Set `qty` available units aside for an order.
    Reserve { sku: Sku, qty: u32 },
    /// Give `qty` reserved units back to the shelf (an order was cancelled).
    Release { sku: Sku, qty: u32 },
    /// `qty` reserved units leave the warehouse.
    Ship { sku: Sku, qty: u32 },
}

impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Inventory::Restock { sku, qty } => write!(f, "restock {qty} x {sku}"),
            Inventory::Reserve { sku, qty } => write!(f, "reserve {qty} x {sku}"),
            Inventory::Release { sku, qty } => write!(f, "release {qty} x {sku}"),
            Inventory::Ship { sku, qty } => write!(f, "ship {qty} x {sku}"),
        }
    }
}

/// Why an [`Inventory`] event was rejected. Each variant names the SKU.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum InventoryRejection {
    /// The SKU was never restocked.
    #[error("unknown sku {sku:?}")]
    UnknownSku { sku: Sku },
    /// Fewer units are available than the reservation asks for.
    #[error("out of stock: {sku:?} has {available} available, {requested} requested")]
    OutOfStock {
        sku: Sku,
        available: u32,
        requested: u32,
    },
    /// A release or shipment names more units than are reserved.
    #[error("not reserved: {sku:?} has {reserved} reserved, {requested} requested")]
    NotReserved {
        sku: Sku,
        reserved: u32,
        requested: u32,
    },
    /// A restock would push the stock past `u32::MAX` units.
    #[error("too much stock: {sku:?} cannot hold {qty} more units")]
    TooMuchStock { sku: Sku, qty: u32 },
}

impl Event for Inventory {
    type Key = Sku;
    type Value = Stock;
    type Rejection = InventoryRejection;

    fn apply(&self, tx: &mut Txn<'_, Sku, Stock>) -> Result<(), InventoryRejection> {
        let sku = match self {
            Inventory::Restock { sku, .. }
            | Inventory::Reserve { sku, .. }
            | Inventory::Release { sku, .. }
            | Inventory::Ship { sku, .. } => sku,
        };
        let current = match (self, tx.get(sku)) {
            (_, Some(stock)) => *stock,
            (Inventory::Restock { .. }, None) => Stock::default(),
            (_, None) => return Err(InventoryRejection::UnknownSku { sku: sku.clone() }),
        };
        let not_reserved = |requested| InventoryRejection::NotReserved {
            sku: sku.clone(),
            reserved: current.reserved,
            requested,
        };
        let next = match *self {
            Inventory::Restock { qty, .. } => Stock {
                available: current
                    .available
                    .checked_add(qty)
                    .filter(|total| total.checked_add(current.reserved).is_some())
                    .ok_or_else(|| InventoryRejection::TooMuchStock {
                        sku: sku.clone(),
                        qty,
                    })?,
                ..current
            },
            Inventory::Reserve { qty, .. } => Stock {
                available: current.available.checked_sub(qty).ok_or_else(|| {
                    InventoryRejection::OutOfStock {
                        sku: sku.clone(),
                        available: current.available,
                        requested: qty,
                    }
                })?,
                reserved: current.reserved + qty, // available + reserved fits in u32
            },
            Inventory::Release { qty, .. } => Stock {
                available: current.available + qty, // likewise
                reserved: current
                    .reserved
                    .checked_sub(qty)
                    .ok_or_else(|| not_reserved(qty))?,
            },
            Inventory::Ship { qty, .. } => Stock {
                reserved: current
                    .reserved
                    .checked_sub(qty)
                    .ok_or_else(|| not_reserved(qty))?,
                ..current
            },
        };
        tx.insert(sku.clone(), next);
        Ok(())
    }
}

/// Why a service call failed, as a handler would report it.
#[derive(Debug, thiserror::Error)]
enum ServiceError {
    /// The request was valid but the inventory said no.
    #[error("request refused: {0}")]
    Refused(InventoryRejection),
    /// The service is shutting down and takes no more requests.
    #[error("inventory service is shutting down")]
    ShuttingDown,
    /// The engine failed to answer (a panicking `apply`, a stopped runtime).
    #[error("inventory engine failed: {0}")]
    Engine(String),
}

impl From<SubmitError<Inventory>> for ServiceError {
    fn from(error: SubmitError<Inventory>) -> Self {
        match error {
            SubmitError::Rejected(reason) => ServiceError::Refused(reason),
            SubmitError::Closed(_) => ServiceError::ShuttingDown,
            other => ServiceError::Engine(other.to_string()),
        }
    }
}

/// A write's outcome: its consistency token and the stock right after it.
#[derive(Debug, Clone, Copy)]
struct Receipt {
    /// The event's sequence number. Pass it to [`InventoryService::stock`]
    /// to read this write back from anywhere.
    token: u64,
    /// The SKU's stock in a snapshot that includes this write (and possibly
    /// later ones).
    stock: Stock,
}

/// The inventory service. Cloning it is cheap: every clone talks to the
/// same owner task.
#[derive(Clone)]
struct InventoryService {
    /// Where commands go: the single writer.
    engine: Engine<Inventory>,
    /// Where queries go: lock-free snapshots, never blocked by writes.
    reader: Reader<Inventory>,
}

impl InventoryService {
    /// Starts the engine on the current runtime.
    async fn open() -> Result<Self, OpenError> {
        let engine = Engine::builder().open().await?;
        let reader = engine.reader();
        Ok(InventoryService { engine, reader })
    }

    /// Submits one event and returns its receipt.
    async fn execute(&self, event: Inventory) -> Result<Receipt, ServiceError> {
        let sku = match &event {
            Inventory::Restock { sku, .. }
            | Inventory::Reserve { sku, .. }
            | Inventory::Release { sku, .. }
            | Inventory::Ship { sku, .. } => sku.clone(),
        };
        let ack = self.engine.submit(event).await?;
        let snapshot = self
            .reader
            .wait_for(ack.seq)
            .await
            .map_err(|_| ServiceError::ShuttingDown)?;
        let stock = snapshot.get(&sku).as_deref().copied().unwrap_or_default();
        Ok(Receipt {
            token: ack.seq,
            stock,
        })
    }

    /// Puts `qty` units of `sku` on the shelf.
    async fn restock(&self, sku: &str, qty: u32) -> Result<Receipt, ServiceError> {
        let sku = sku.to_owned();
        self.execute(Inventory::Restock { sku, qty }).await
    }

    /// Sets `qty` units of `sku` aside for an order, if that many are available.
    async fn reserve(&self, sku: &str, qty: u32) -> Result<Receipt, ServiceError> {
        let sku = sku.to_owned();
        self.execute(Inventory::Reserve { sku, qty }).await
    }

    /// Returns `qty` reserved units of `sku` to the shelf.
    async fn release(&self, sku: &str, qty: u32) -> Result<Receipt, ServiceError> {
        let sku = sku.to_owned();
        self.execute(Inventory::Release { sku, qty }).await
    }

    /// Ships `qty` reserved units of `sku`.
    async fn ship(&self, sku: &str, qty: u32) -> Result<Receipt, ServiceError> {
        let sku = sku.to_owned();
        self.execute(Inventory::Ship { sku, qty }).await
    }

    /// The stock of `sku` in a snapshot that includes at least every write
    /// up to `token` (0: whatever is current). This is read-your-writes
    /// for a client that kept the token from its last write.
    async fn stock(&self, sku: &str, token: u64) -> Result<Option<Stock>, ServiceError> {
        let snapshot = self
            .reader
            .wait_for(token)
            .await
            .map_err(|_| ServiceError::ShuttingDown)?;
        Ok(snapshot.get(sku).as_deref().copied())
    }

    /// Stops taking requests, answers what is queued, and waits for the
    /// owner task to finish.
    async fn shutdown(&self) -> Result<(), solostate::ShutdownError> {
        self.engine.shutdown().await
    }
}

/// Follows the change feed until the engine stops, printing one audit line
/// per committed event. Returns how many events it logged.
async fn audit_log(mut feed: solostate::ChangeFeed<Inventory>) -> Result<u64, ChangeError> {
    let mut logged = 0;
    loop {
        match feed.recv().await {
            Ok(change) => {
                println!("  audit #{:<3} {}", change.seq(), change.event());
                logged += 1;
            }
            Err(ChangeError::Closed) => return Ok(logged),
            // A lagged feed has dropped events; an audit log must say so.
            Err(lagged) => return Err(lagged),
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let service = InventoryService::open().await?;
    // Subscribe before the first write, so the audit log sees every event.
    let audit = tokio::spawn(audit_log(service.reader.changes()));

    let widgets = service.restock("widget", 10).await?;
    service.restock("gadget", 3).await?;
    // A client holding the token reads its own write back.
    let seen = service.stock("widget", widgets.token).await?;
    println!("restocked: widget {seen:?} (token {})", widgets.token);

    // Eight customers race for ten widgets, two each: exactly five win.
    let customers: Vec<_> = (1..=8)
        .map(|customer| {
            let service = service.clone();
            tokio::spawn(async move { (customer, service.reserve("widget", 2).await) })
        })
        .collect();
    let mut won = 0;
    for handle in customers {
        let (customer, outcome) = handle.await?;
        match outcome {
            Ok(receipt) => {
                won += 1;
                println!(
                    "customer {customer}: reserved 2 widgets (token {}, then {:?})",
                    receipt.token, receipt.stock
                );
            }
            Err(ServiceError::Refused(reason)) => println!("customer {customer}: {reason}"),
            Err(other) => return Err(other.into()),
        }
    }
    if won != 5 {
        return Err(format!("expected exactly 5 reservations to win, {won} did").into());
    }

    let shipped = service.ship("widget", 4).await?;
    println!("shipped 4 widgets: now {:?}", shipped.stock);
    let released = service.release("widget", 2).await?;
    println!("a customer cancelled: now {:?}", released.stock);
    match service.reserve("gizmo", 1).await {
        Err(ServiceError::Refused(reason)) => println!("reserve gizmo: {reason}"),
        other => return Err(format!("expected an unknown-sku refusal, got {other:?}").into()),
    }
    match service.ship("gadget", 1).await {
        Err(ServiceError::Refused(reason)) => println!("ship gadget: {reason}"),
        other => return Err(format!("expected a not-reserved refusal, got {other:?}").into()),
    }

    let widget = service.stock("widget", released.token).await?;
    let expected = Stock {
        available: 2,
        reserved: 4,
    };
    if widget != Some(expected) {
        return Err(format!("widget stock is {widget:?}, expected {expected:?}").into());
    }

    service.shutdown().await?;
    match service.restock("widget", 1).await {
        Err(ServiceError::ShuttingDown) => println!("after shutdown: requests are refused"),
        other => return Err(format!("expected a shutdown refusal, got {other:?}").into()),
    }

    let logged = audit.await??;
    let stats = service.engine.stats();
    println!(
        "applied {} events, rejected {}; the audit log recorded {logged}; final widget stock {widget:?}",
        stats.applied, stats.rejected
    );
    if logged != stats.applied {
        return Err(format!(
            "the audit log recorded {logged} events but {} were applied",
            stats.applied
        )
        .into());
    }
    Ok(())
}
