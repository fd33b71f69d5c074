//! File descriptors: the soft limit is raised to the hard one at start, and
//! the HTTP port's connection cap is lowered if needed so that the member
//! port's connections and a reserve always fit under it.

/// Descriptors kept free for the member port, listeners, the config and
/// secret files and logging, beyond both ports' connection caps.
pub(crate) const FD_RESERVE: u64 = 64;

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (logging both) and
/// returns the HTTP connection cap that fits: at most `http_max`, and no
/// more than the limit left after `member_max` connections (one socket
/// each) and [`FD_RESERVE`]. At least 1.
pub(crate) fn reserve(member_max: usize, http_max: usize) -> usize {
    let limit = match rlimit::getrlimit(rlimit::Resource::NOFILE) {
        Ok((soft, hard)) => {
            let raised = rlimit::increase_nofile_limit(hard).unwrap_or(soft);
            tracing::info!(
                soft_before = soft,
                hard,
                soft_now = raised,
                "file descriptor limit"
            );
            raised
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the file descriptor limit");
            return http_max;
        }
    };
    let room = limit
        .saturating_sub(member_max as u64)
        .saturating_sub(FD_RESERVE)
        .max(1);
    let fits = usize::try_from(room).unwrap_or(usize::MAX).min(http_max);
    if fits < http_max {
        tracing::warn!(
            http_connections_max = http_max,
            lowered_to = fits,
            fd_limit = limit,
            member_connections_max = member_max,
            reserve = FD_RESERVE,
            "HTTP connection cap lowered to keep descriptors for the member port"
        );
    }
    if (member_max as u64).saturating_add(FD_RESERVE) > limit {
        tracing::warn!(
            fd_limit = limit,
            connections_max = member_max,
            "connections_max is above what the file descriptor limit allows; raise the hard limit (ulimit -Hn)"
        );
    }
    fits
}
