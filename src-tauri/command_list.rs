// The app's commands, listed once. `lib.rs` registers their handlers from
// this list and `build.rs` their permissions (one per command); a test in
// `lib.rs` checks that the capability in tauri.conf.json grants exactly
// these. `with_commands!(m)` expands to `m!(name, name, …)`.
macro_rules! with_commands {
    ($then:ident) => {
        $then!(
            servers_list,
            server_save,
            server_remove,
            login,
            login_oidc,
            logout,
            connect,
            disconnect,
            reconnect_now,
            subscribe,
            unsubscribe,
            feed_decoder_set,
            publish,
            saved_list,
            saved_save,
            saved_remove,
            saved_send,
            saved_export,
            saved_import,
            snapshot,
            events_attach,
            history_query,
            history_export,
            record_page,
            record_search,
            record_export,
            record_usage,
            settings_get,
            settings_save
        )
    };
}
