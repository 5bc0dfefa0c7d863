//! Rollcall's projection runtime: subscribe, batch, checkpoint atomically, rebuild, report lag.
