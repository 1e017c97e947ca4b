//! Redis: the shared connection of an endpoint ([`connection`]) and every command the crate
//! sends on it ([`commands`]).

mod commands;
mod connection;

pub(crate) use commands::{
    Fetched, LeaseOn, ReadMode, Taken, Write, del, del_with, exists, get, get_blocking, get_many,
    named, pexpire, pexpire_many, pttl, release_lease, scan, set, set_absent, set_many,
    take_lease_and_get, unlink, write_cmd,
};
pub(crate) use connection::{Failure, Remote};
