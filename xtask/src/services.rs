//! The seven services as the tasks see them: name, port, configuration.

use clap::CommandFactory;
use common::config::{Setting, settings};

pub struct ServiceDef {
    /// Crate, binary and compose service name.
    pub name: &'static str,
    /// Port of the default `BIND_ADDR`.
    pub port: u16,
    pub command: fn() -> clap::Command,
}

impl ServiceDef {
    pub fn settings(&self) -> Vec<Setting> {
        settings(&(self.command)())
    }
}

/// In start order: each service comes after the ones it needs.
pub const SERVICES: [ServiceDef; 7] = [
    ServiceDef {
        name: "tenant-resolver",
        port: 8081,
        command: tenant_resolver::Config::command,
    },
    ServiceDef {
        name: "user-service",
        port: 8082,
        command: user_service::Config::command,
    },
    ServiceDef {
        name: "project-service",
        port: 8083,
        command: project_service::Config::command,
    },
    ServiceDef {
        name: "url-shortener",
        port: 8084,
        command: url_shortener::Config::command,
    },
    ServiceDef {
        name: "analytics-service",
        port: 8085,
        command: analytics_service::Config::command,
    },
    ServiceDef {
        name: "notification-service",
        port: 8086,
        command: notification_service::Config::command,
    },
    ServiceDef {
        name: "gateway",
        port: 8080,
        command: gateway::Config::command,
    },
];
