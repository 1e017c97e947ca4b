//! Redis: the shared connection of an endpoint ([`connection`]) and every command the crate
//! sends on it ([`commands`]; a load's conditional fill and the traces it checks: [`fill`]).

mod commands;
mod connection;
pub(crate) mod fill;

pub(crate) use commands::{
    Also, Fetched, LeaseOn, ReadMode, Taken, Write, del, exists, get, get_blocking, get_many,
    named, pexpire, pexpire_many, pttl, release_lease, scan, set, set_many, take_lease_and_get,
    unlink, write_cmd,
};
pub(crate) use connection::{Failure, Remote};
