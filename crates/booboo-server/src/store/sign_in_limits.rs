//! Sign-in limits as counters that a request reserves before its password
//! is checked. The rule lives here once; each backend reads the two rows
//! under a lock, asks [`reserve`], and writes the answer back in the same
//! transaction, so parallel requests are counted one after another.

/// The limits the dashboard holds sign-ins to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInLimits {
    /// How long a key's counts last.
    pub window_ms: i64,
    /// Password checks one address may have per window. A successful
    /// sign-in gives its check back, so this bounds wrong guesses.
    pub checks_per_address: i64,
    /// Checks one account has at full speed per window; after those it is
    /// slowed, not locked: one check per `slowed_interval_ms`.
    pub checks_per_account: i64,
    pub slowed_interval_ms: i64,
}

/// Whether a sign-in may check its password now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInReservation {
    Granted,
    /// This address used its checks for the window.
    AddressLimited {
        retry_after_ms: i64,
    },
    /// This account had many failed sign-ins; its next check is not yet due.
    AccountSlowed {
        retry_after_ms: i64,
    },
}

/// One key's row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Counter {
    pub window_ends_at: i64,
    pub checks: i64,
    pub next_check_at: i64,
}

impl Counter {
    /// A counter whose window has ended starts again.
    fn current(self, limits: &SignInLimits, now: i64) -> Counter {
        if self.window_ends_at <= now {
            Counter { window_ends_at: now + limits.window_ms, checks: 0, next_check_at: 0 }
        } else {
            self
        }
    }
}

/// The counters after one more check, or why there is none.
pub(super) fn reserve(
    address: Counter,
    account: Counter,
    limits: &SignInLimits,
    now: i64,
) -> Result<(Counter, Counter), SignInReservation> {
    let mut address = address.current(limits, now);
    if address.checks >= limits.checks_per_address {
        // `now` was read before the lock was granted, so a window another
        // request opened meanwhile may end a little past now + window; the
        // wait asked of the client never exceeds the rule itself.
        let retry_after_ms = (address.window_ends_at - now).min(limits.window_ms);
        return Err(SignInReservation::AddressLimited { retry_after_ms });
    }
    let mut account = account.current(limits, now);
    if account.checks >= limits.checks_per_account {
        if account.next_check_at > now {
            let retry_after_ms = (account.next_check_at - now).min(limits.slowed_interval_ms);
            return Err(SignInReservation::AccountSlowed { retry_after_ms });
        }
        account.next_check_at = now + limits.slowed_interval_ms;
    }
    address.checks += 1;
    account.checks += 1;
    Ok((address, account))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: SignInLimits =
        SignInLimits { window_ms: 1000, checks_per_address: 3, checks_per_account: 2, slowed_interval_ms: 100 };
    const NEW: Counter = Counter { window_ends_at: 0, checks: 0, next_check_at: 0 };

    #[test]
    fn an_address_runs_out_and_its_window_starts_again() {
        let mut address = NEW;
        for i in 0..3 {
            // A new account each time: only the address limit applies.
            (address, _) = reserve(address, NEW, &LIMITS, 10 + i).unwrap();
        }
        assert_eq!(reserve(address, NEW, &LIMITS, 20), Err(SignInReservation::AddressLimited { retry_after_ms: 990 }));
        assert!(reserve(address, NEW, &LIMITS, 1010).is_ok(), "a new window");
    }

    #[test]
    fn an_account_is_slowed_not_locked() {
        let mut account = NEW;
        for i in 0..2 {
            (_, account) = reserve(NEW, account, &LIMITS, 10 + i).unwrap();
        }
        (_, account) = reserve(NEW, account, &LIMITS, 20).expect("the first slowed check is due at once");
        assert_eq!(reserve(NEW, account, &LIMITS, 50), Err(SignInReservation::AccountSlowed { retry_after_ms: 70 }));
        (_, account) = reserve(NEW, account, &LIMITS, 120).expect("due again after the interval");
        assert_eq!(account.next_check_at, 220);
    }
}
