//! The AWS SDK's shared configuration: the default credential chain (EKS Pod Identity, web
//! identity, environment, …) over an HTTPS client built on rustls with ring, the TLS stack the
//! origin already links (the SDK's default would add aws-lc).

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};

/// Loads the SDK configuration for `region`. Reads the environment and profile files only; no
/// network until a credential or a service is asked for.
pub async fn sdk_config(region: &str) -> SdkConfig {
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .region(Region::new(region.to_string()))
        .load()
        .await
}
