//! ssh_config keywords: OpenSSH's client keywords and what vmssh does with
//! each (applies it, reports it unsupported or deprecated, ignores it).

/// What a keyword is to vmssh.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kw {
    Host,
    Match,
    Include,
    IgnoreUnknown,
    HostName,
    Port,
    User,
    IdentityFile,
    CertificateFile,
    IdentitiesOnly,
    IdentityAgent,
    ProxyCommand,
    ProxyJump,
    UserKnownHostsFile,
    StrictHostKeyChecking,
    HostKeyAlias,
    ConnectTimeout,
    ServerAliveInterval,
    ServerAliveCountMax,
    KexAlgorithms,
    Ciphers,
    Macs,
    HostKeyAlgorithms,
    Compression,
    ForwardAgent,
    /// An OpenSSH option vmssh does not apply: reported when it applies.
    Unsupported,
    /// An option OpenSSH itself ignores with a warning.
    Deprecated,
    /// An option OpenSSH ignores silently (`Protocol`).
    Ignore,
    Unknown,
}

/// OpenSSH's client keywords (readconf.c, up to 9.x, with Debian's
/// additions), lowercased.
pub(super) fn keyword(k: &str) -> Kw {
    match k {
        "host" => Kw::Host,
        "match" => Kw::Match,
        "include" => Kw::Include,
        "ignoreunknown" => Kw::IgnoreUnknown,
        "hostname" => Kw::HostName,
        "port" => Kw::Port,
        "user" => Kw::User,
        "identityfile" | "identityfile2" => Kw::IdentityFile,
        "certificatefile" => Kw::CertificateFile,
        "identitiesonly" => Kw::IdentitiesOnly,
        "identityagent" => Kw::IdentityAgent,
        "proxycommand" => Kw::ProxyCommand,
        "proxyjump" => Kw::ProxyJump,
        "userknownhostsfile" => Kw::UserKnownHostsFile,
        "stricthostkeychecking" => Kw::StrictHostKeyChecking,
        "hostkeyalias" => Kw::HostKeyAlias,
        "connecttimeout" | "setuptimeout" => Kw::ConnectTimeout,
        "serveraliveinterval" | "protocolkeepalives" => Kw::ServerAliveInterval,
        "serveralivecountmax" => Kw::ServerAliveCountMax,
        "kexalgorithms" => Kw::KexAlgorithms,
        "ciphers" => Kw::Ciphers,
        "macs" => Kw::Macs,
        "hostkeyalgorithms" => Kw::HostKeyAlgorithms,
        "compression" => Kw::Compression,
        "forwardagent" => Kw::ForwardAgent,
        "protocol" => Kw::Ignore,
        "cipher"
        | "fallbacktorsh"
        | "globalknownhostsfile2"
        | "rhostsauthentication"
        | "useblacklistedkeys"
        | "userknownhostsfile2"
        | "useroaming"
        | "usersh"
        | "useprivilegedport"
        | "afstokenpassing"
        | "kerberosauthentication"
        | "kerberostgtpassing"
        | "rsaauthentication"
        | "rhostsrsaauthentication"
        | "compressionlevel" => Kw::Deprecated,
        "gssapiauthentication"
        | "gssapikeyexchange"
        | "gssapidelegatecredentials"
        | "gssapitrustdns"
        | "gssapiclientidentity"
        | "gssapiserveridentity"
        | "gssapirenewalforcesrekey"
        | "gssapikexalgorithms"
        | "pkcs11provider"
        | "smartcarddevice"
        | "forwardx11"
        | "forwardx11trusted"
        | "forwardx11timeout"
        | "exitonforwardfailure"
        | "xauthlocation"
        | "gatewayports"
        | "passwordauthentication"
        | "kbdinteractiveauthentication"
        | "kbdinteractivedevices"
        | "challengeresponseauthentication"
        | "skeyauthentication"
        | "tisauthentication"
        | "pubkeyauthentication"
        | "dsaauthentication"
        | "hostbasedauthentication"
        | "addkeystoagent"
        | "remoteforward"
        | "localforward"
        | "permitremoteopen"
        | "escapechar"
        | "globalknownhostsfile"
        | "connectionattempts"
        | "batchmode"
        | "checkhostip"
        | "tcpkeepalive"
        | "keepalive"
        | "numberofpasswordprompts"
        | "syslogfacility"
        | "loglevel"
        | "logverbose"
        | "dynamicforward"
        | "preferredauthentications"
        | "casignaturealgorithms"
        | "bindaddress"
        | "bindinterface"
        | "clearallforwardings"
        | "enablesshkeysign"
        | "verifyhostkeydns"
        | "nohostauthenticationforlocalhost"
        | "rekeylimit"
        | "addressfamily"
        | "sendenv"
        | "setenv"
        | "controlpath"
        | "controlmaster"
        | "controlpersist"
        | "hashknownhosts"
        | "tunnel"
        | "tunneldevice"
        | "localcommand"
        | "permitlocalcommand"
        | "remotecommand"
        | "visualhostkey"
        | "ipqos"
        | "requesttty"
        | "sessiontype"
        | "stdinnull"
        | "forkafterauthentication"
        | "proxyusefdpass"
        | "canonicaldomains"
        | "canonicalizefallbacklocal"
        | "canonicalizehostname"
        | "canonicalizemaxdots"
        | "canonicalizepermittedcnames"
        | "streamlocalbindmask"
        | "streamlocalbindunlink"
        | "revokedhostkeys"
        | "fingerprinthash"
        | "updatehostkeys"
        | "hostbasedacceptedalgorithms"
        | "hostbasedkeytypes"
        | "pubkeyacceptedalgorithms"
        | "pubkeyacceptedkeytypes"
        | "securitykeyprovider"
        | "knownhostscommand"
        | "requiredrsasize"
        | "enableescapecommandline"
        | "obscurekeystroketiming"
        | "channeltimeout"
        | "tag"
        | "refuseconnection"
        | "warnweakcrypto"
        | "versionaddendum" => Kw::Unsupported,
        _ => Kw::Unknown,
    }
}
