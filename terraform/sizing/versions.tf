# Provider-free: plain arithmetic over the inputs, so `terraform test`
# checks it offline.
terraform {
  required_version = ">= 1.6.0"
}
