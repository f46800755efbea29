// Package installer makes stationsync an unattended OS service, on
// github.com/kardianos/service: a Windows service (restart on failure,
// delayed automatic start), a systemd unit (Restart=on-failure), a SysV or
// OpenRC init script where that is the init system, a launchd daemon on
// macOS (KeepAlive).
//
// The service always runs `<absolute path of the installing binary> run
// --config <config folder>/<config file>`. Install copies the config file,
// the three TLS files it names and the encryption key file (when it exists)
// into the per-OS config folder ([ConfigDir]); it copies nothing else, and
// rewrites a path in the copied config only where moving the file would
// change what the path means (README.md in this folder has the rules).
//
// Under the service manager, [RunService] runs the node with its log in a
// size-capped rotating file in the data folder ([RotatingFile]) and its
// warnings and errors also in the service log (Windows Event Log, syslog /
// the journal). A terminal `stationsync run` keeps logging to stderr.
package installer
