//! Deploying a farm: many boxes boot the rescue system over the network
//! (DHCP and TFTP from the site's dnsmasq, or QEMU's), iPXE fetches its
//! script from `lifeboat serve`, and each box restores the one golden
//! backup over HTTP with ranged reads, as the clone the clone plan gives its
//! MAC address or SMBIOS serial, reporting its phase back to the server.
//!
//! - [`plan`]: the clone plan (`[[client]]` tables: `mac`/`serial` and a clone file);
//! - [`http`]: the bounded HTTP/1.1 the server speaks (requests, single byte ranges);
//! - [`server`]: the routes, the files served, every client's status.

pub mod http;
pub mod plan;
pub mod server;

pub use plan::{ClonePlan, PlanError};
pub use server::{fetch_status, fetch_text, send_report, ClientStatus, Config, ServeError, Server, Status};

#[cfg(test)]
mod tests;
