package relay

// SaramaConfigForTest is saramaConfig, for tests that read what the relay
// wrote with the same security settings.
var SaramaConfigForTest = saramaConfig
