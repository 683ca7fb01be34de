// aci-runners: everything the Function needs in one resource group.
//
//   user-assigned identity ──▶ Key Vault (RBAC, "Key Vault Secrets User")
//                          ──▶ the GitHub App's key, in App mode (custom role: keys/sign only)
//                          ──▶ storage (AzureWebJobsStorage, identity-based: blob/queue/table roles)
//                          ──▶ runner resource group (custom role: container groups read/write/delete)
//                          ──▶ runner subnet (custom role: subnets/join/action), when a VNet is used
//   Linux Function App (custom handler) on Flex Consumption (default) or Elastic Premium
//   Application Insights (Entra ID auth with the same identity)
//
// The template never creates secrets or keys: set `github-pat` (or import the GitHub App's
// key) and `github-webhook-secret` in the vault afterwards (docs/deploy.md). Deploy with `azd up`, or with
// `az deployment group create -g <rg> -f infra/main.bicep -p environmentName=<name>`.
targetScope = 'resourceGroup'

metadata description = 'aci-runners: ephemeral GitHub Actions runners on Azure Container Instances, driven by a Rust Azure Functions custom handler.'

// ---------------------------------------------------------------------------------------
// Deployment
// ---------------------------------------------------------------------------------------

@minLength(1)
@maxLength(64)
@description('Name of the environment (azd: AZURE_ENV_NAME). Feeds the unique suffix of every resource name and the azd-env-name tag.')
param environmentName string

@description('Region for the Function App, storage, Key Vault and monitoring. Flex Consumption runs in a subset of regions: `az functionapp list-flexconsumption-locations`.')
param location string = resourceGroup().location

@description('Hosting plan. FlexConsumption (FC1): scales to zero, billed per execution, runtime declared in functionAppConfig. ElasticPremium (EP1-3): always at least one warm instance, FUNCTIONS_WORKER_RUNTIME=custom app setting, needs a key-based Azure Files content share.')
@allowed([
  'FlexConsumption'
  'ElasticPremium'
])
param hostingPlan string = 'FlexConsumption'

@description('Elastic Premium size, used only when hostingPlan is ElasticPremium.')
@allowed([
  'EP1'
  'EP2'
  'EP3'
])
param elasticPremiumSku string = 'EP1'

@description('Flex Consumption instance memory (MB).')
@allowed([
  2048
  4096
])
param flexInstanceMemoryMB int = 2048

@description('Flex Consumption maximum instance count.')
@minValue(40)
@maxValue(1000)
param flexMaximumInstanceCount int = 40

@description('Object id of the person or pipeline deploying. When set, it gets "Key Vault Secrets Officer" on the vault so it can run `az keyvault secret set` (azd passes AZURE_PRINCIPAL_ID). Leave empty to grant that yourself.')
param deployerPrincipalId string = ''

@description('Kind of principal in deployerPrincipalId.')
@allowed([
  'User'
  'Group'
  'ServicePrincipal'
])
param deployerPrincipalType string = 'User'

@description('Key Vault soft-delete retention (days, 7-90).')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteRetentionDays int = 7

@description('Turn on Key Vault purge protection (cannot be turned off again; a deleted vault then blocks its name for the retention period).')
param keyVaultPurgeProtection bool = false

@description('Extra tags for every resource.')
param tags object = {}

// ---------------------------------------------------------------------------------------
// Where runners go
// ---------------------------------------------------------------------------------------

@description('Existing resource group (same subscription) for the runner container groups. Empty: this deployment\'s resource group.')
param runnerResourceGroupName string = ''

@description('Region of the runner container groups (RUNNER_LOCATION). Empty: same as location. With a VNet it must be the VNet\'s region.')
param runnerLocation string = ''

@description('Put runners in a virtual network (RUNNER_SUBNET_ID). With existingRunnerSubnetId empty, a VNet, a delegated subnet and a NAT gateway are created.')
param useVnet bool = false

@description('Resource id of an existing subnet for the runners (used when useVnet is true). It must already be delegated to Microsoft.ContainerInstance/containerGroups and have outbound internet access (NAT gateway, firewall, ...).')
param existingRunnerSubnetId string = ''

@description('Address space of the created VNet (useVnet true, no existing subnet).')
param vnetAddressPrefix string = '10.240.0.0/16'

@description('Address range of the created runner subnet.')
param runnerSubnetPrefix string = '10.240.0.0/24'

// ---------------------------------------------------------------------------------------
// Handler settings (DESIGN.md "Settings"); defaults are the handler's own defaults
// ---------------------------------------------------------------------------------------

@description('Alert when the p95 of the time to a runner (created_at to started_at, on our runners) over the last hour exceeds this many seconds.')
@minValue(1)
param timeToRunnerP95AlertSeconds int = 300

@description('Action groups (resource ids) the alert rules notify; empty: alerts show in the portal only.')
param alertActionGroupIds array = []

@description('How the handler authenticates to GitHub: pat (a PAT in Key Vault, GITHUB_PAT_SECRET_NAME) or app (a GitHub App whose private key is a Key Vault key that only signs: GITHUB_APP_CLIENT_ID, GITHUB_APP_KEY_NAME). Exactly one is configured.')
@allowed([
  'pat'
  'app'
])
param githubAuth string = 'pat'

@description('GITHUB_PAT_SECRET_NAME: Key Vault secret holding the GitHub PAT (githubAuth=pat).')
param githubPatSecretName string = 'github-pat'

@description('GITHUB_WEBHOOK_SECRET_NAME: Key Vault secret holding the webhook secret (one per line for rotation).')
param githubWebhookSecretName string = 'github-webhook-secret'

@description('RUNNER_LABELS: labels every runner carries (comma list).')
param runnerLabels string = 'self-hosted,linux,x64,aci'

@description('RUNNER_SCOPE: register runners to the job\'s repository (repo) or organization (org).')
@allowed([
  'repo'
  'org'
])
param runnerScope string = 'repo'

@description('RUNNER_GROUP_ID: runner group for org scope.')
@minValue(1)
param runnerGroupId int = 1

@description('RUNNER_IMAGE: runner container image.')
param runnerImage string = 'ghcr.io/actions/actions-runner:latest'

@description('RUNNER_CPU: vCPUs per runner container (a string: ACI accepts fractions such as 1.5).')
param runnerCpu string = '2'

@description('RUNNER_MEMORY_GB: memory per runner container in GB (string, fractions allowed).')
param runnerMemoryGb string = '4'

@description('RUNNER_NAME_PREFIX: prefix of runner and container group names (lowercase letters, digits, hyphens).')
@minLength(1)
param runnerNamePrefix string = 'aci-runner'

@description('MAX_RUNNERS: cap on live managed container groups.')
@minValue(1)
param maxRunners int = 20

@description('RUNNER_IDLE_TIMEOUT_MINUTES: a runner with no job after this long is removed by the sweeper.')
@minValue(1)
param runnerIdleTimeoutMinutes int = 15

@description('RUNNER_MAX_LIFETIME_MINUTES: any group older than this is removed.')
@minValue(1)
param runnerMaxLifetimeMinutes int = 360

@description('SWEEP_SCHEDULE: NCRONTAB (six fields) for the sweeper timer.')
param sweepSchedule string = '0 */5 * * * *'

@description('ALLOWED_REPOSITORIES: comma list of owner/name; empty = any (the setting is then left unset).')
param allowedRepositories string = ''

@description('ALLOWED_OWNERS: comma list of owners; empty = any (the setting is then left unset).')
param allowedOwners string = ''

@description('OIDC_AUDIENCE: audience for the workflow-step `runners` function; empty = that function answers 503 (the setting is then left unset).')
param oidcAudience string = ''

@description('OIDC_ISSUER: GitHub OIDC issuer (GitHub Enterprise Server has its own).')
param oidcIssuer string = 'https://token.actions.githubusercontent.com'

@description('GITHUB_API_URL: GitHub REST base URL (GitHub Enterprise Server: https://HOST/api/v3).')
param githubApiUrl string = 'https://api.github.com'

@description('AZURE_RESOURCE_MANAGER_URL: ARM endpoint. Empty: this cloud\'s endpoint (environment().resourceManager) without the trailing slash.')
param azureResourceManagerUrl string = ''

@description('ACI_API_VERSION: container groups api-version.')
param aciApiVersion string = '2025-09-01'

@description('DRY_RUN: log every ARM and GitHub write instead of doing it.')
param dryRun bool = false

@description('MAX_RUNNERS_PER_REPOSITORY: one repository\'s share of MAX_RUNNERS; 0 = no share (the setting is then left unset).')
@minValue(0)
param maxRunnersPerRepository int = 0

@description('RECONCILE_AFTER_SECONDS: a job GitHub still has queued this long, with no group and no request, is given a runner by the sweeper.')
@minValue(1)
param reconcileAfterSeconds int = 120

@description('GITHUB_APP_CLIENT_ID: the GitHub App\'s client id (githubAuth=app; required then, or the handler refuses to start).')
param githubAppClientId string = ''

@description('GITHUB_APP_KEY_NAME: Key Vault key (RSA, imported from the App\'s private key PEM) that signs the App JWT (githubAuth=app).')
param githubAppKeyName string = 'github-app-key'

@description('githubAuth=app: the key githubAppKeyName is in the vault, so the Function\'s identity can be given sign on it (a role assignment needs its key to exist). Deploy once with false, import the key, deploy again with true.')
param githubAppKeyImported bool = false

@description('WARM_RUNNERS: idle runners kept ready per target, e.g. octo-org/octo-repo=2 (repo scope) or octo-org=2 (org scope), comma list, or one number for every allow-listed target; empty = none.')
param warmRunners string = ''

@description('WARM_HOURS: when the warm floor applies (with warmRunners), e.g. Mon-Fri 07:00-19:00 UTC+01:00; outside it the floor is 0; empty = always.')
param warmHours string = ''

// ---------------------------------------------------------------------------------------
// Names and derived values
// ---------------------------------------------------------------------------------------

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var isFlex = hostingPlan == 'FlexConsumption'
var allTags = union(tags, {
  'azd-env-name': environmentName
})

// azd finds the deploy target by this tag; the service is named `app` in azure.yaml.
var azdServiceName = 'app'

var functionAppName = 'func-aci-runners-${token}'
var planName = 'plan-aci-runners-${token}'
var storageAccountName = 'st${token}'
var keyVaultName = 'kv-acir-${token}'
var identityName = 'id-aci-runners-${token}'
var workspaceName = 'log-aci-runners-${token}'
var insightsName = 'appi-aci-runners-${token}'
var vnetName = 'vnet-aci-runners-${token}'

// Flex Consumption deploys the package into this blob container.
var deploymentContainerName = 'app-package'

// The queue the github-webhook and runners functions write to and provision reads
// (functions/*/function.json: connection "AzureWebJobsStorage", queueName "runner-requests").
var requestQueueName = 'runner-requests'

var runnerRgName = empty(runnerResourceGroupName) ? resourceGroup().name : runnerResourceGroupName
var effectiveRunnerLocation = empty(runnerLocation) ? location : runnerLocation

var armUrlRaw = empty(azureResourceManagerUrl) ? environment().resourceManager : azureResourceManagerUrl
var armUrl = endsWith(armUrlRaw, '/') ? substring(armUrlRaw, 0, length(armUrlRaw) - 1) : armUrlRaw

var appMode = githubAuth == 'app'
var createVnet = useVnet && empty(existingRunnerSubnetId)
var useExistingSubnet = useVnet && !empty(existingRunnerSubnetId)
// /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network/virtualNetworks/{vnet}/subnets/{subnet}
var existingSubnetSegments = split(useExistingSubnet ? existingRunnerSubnetId : '/subscriptions/${subscription().subscriptionId}/resourceGroups/${resourceGroup().name}/providers/Microsoft.Network/virtualNetworks/none/subnets/none', '/')

// Built-in role definition ids.
var roleIds = {
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  keyVaultCryptoOfficer: '14b46e9e-c2b7-41b4-b07b-48a6ebf60603'
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// Host storage (AzureWebJobsStorage) and the queue bindings: blob for the host's keys,
// leases and Flex packages; queue for runner-requests and its poison queue; table for
// the host's diagnostic events.
var storageRoleIds = [
  roleIds.storageBlobDataOwner
  roleIds.storageQueueDataContributor
  roleIds.storageTableDataContributor
]

// ---------------------------------------------------------------------------------------
// Identity
// ---------------------------------------------------------------------------------------

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: identityName
  location: location
  tags: allTags
}

// ---------------------------------------------------------------------------------------
// Storage (AzureWebJobsStorage, identity-based)
// ---------------------------------------------------------------------------------------

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: allTags
  kind: 'StorageV2'
  sku: {
    name: 'Standard_LRS'
  }
  properties: {
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowBlobPublicAccess: false
    // The Function reaches blob/queue/table with its identity. Only Elastic Premium
    // needs account keys: its Azure Files content share has no identity-based option.
    allowSharedKeyAccess: !isFlex
    defaultToOAuthAuthentication: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (isFlex) {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// The bindings create these on first use; creating them here makes them visible (and
// monitorable) from the start.
resource requestQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: requestQueueName
}

resource requestPoisonQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: '${requestQueueName}-poison'
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for roleId in storageRoleIds: {
  name: guid(storage.id, identity.id, roleId)
  scope: storage
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleId)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}]

// ---------------------------------------------------------------------------------------
// Key Vault (RBAC mode; secrets are set by the operator, never by this template)
// ---------------------------------------------------------------------------------------

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: allTags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: keyVaultSoftDeleteRetentionDays
    // false cannot be sent explicitly: leave the property out unless turning it on.
    enablePurgeProtection: keyVaultPurgeProtection ? true : null
    // The Function is not VNet-integrated, so the vault stays reachable over its public
    // endpoint; access is by Entra ID + RBAC only.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource vaultSecretsUser 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, roleIds.keyVaultSecretsUser)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsUser)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    description: 'aci-runners Function reads the webhook secret and, with githubAuth=pat, the GitHub PAT'
  }
}

resource vaultSecretsOfficerDeployer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(deployerPrincipalId)) {
  name: guid(vault.id, deployerPrincipalId, roleIds.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultSecretsOfficer)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
    description: 'aci-runners deployer sets github-pat and github-webhook-secret'
  }
}

// App mode: the deployer imports the App's private key (az keyvault key import).
resource vaultCryptoOfficerDeployer 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (appMode && !empty(deployerPrincipalId)) {
  name: guid(vault.id, deployerPrincipalId, roleIds.keyVaultCryptoOfficer)
  scope: vault
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.keyVaultCryptoOfficer)
    principalId: deployerPrincipalId
    principalType: deployerPrincipalType
    description: 'aci-runners deployer imports the GitHub App private key as a Key Vault key'
  }
}

// App mode: the identity may sign with the App's key and nothing else (see the module).
module appKeySign 'modules/app-key-sign.bicep' = if (appMode && githubAppKeyImported) {
  name: 'aci-runners-app-key-sign'
  params: {
    vaultName: vault.name
    keyName: githubAppKeyName
    principalId: identity.properties.principalId
  }
}

// ---------------------------------------------------------------------------------------
// Monitoring
// ---------------------------------------------------------------------------------------

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: workspaceName
  location: location
  tags: allTags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: 30
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: insightsName
  location: location
  tags: allTags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    DisableLocalAuth: true
  }
}

resource insightsPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(insights.id, identity.id, roleIds.monitoringMetricsPublisher)
  scope: insights
  properties: {
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roleIds.monitoringMetricsPublisher)
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
  }
}

module monitoring 'modules/monitoring.bicep' = {
  name: 'aci-runners-monitoring'
  params: {
    location: location
    tags: allTags
    insightsId: insights.id
    timeToRunnerP95AlertSeconds: timeToRunnerP95AlertSeconds
    actionGroupIds: alertActionGroupIds
  }
}

// ---------------------------------------------------------------------------------------
// Runner placement: least rights in the runner resource group, optional VNet
// ---------------------------------------------------------------------------------------

module runnerAccess 'modules/runner-access.bicep' = {
  name: 'aci-runners-runner-access'
  scope: resourceGroup(runnerRgName)
  params: {
    principalId: identity.properties.principalId
  }
}

module network 'modules/network.bicep' = if (createVnet) {
  name: 'aci-runners-network'
  params: {
    location: effectiveRunnerLocation
    tags: allTags
    vnetName: vnetName
    addressPrefix: vnetAddressPrefix
    runnerSubnetPrefix: runnerSubnetPrefix
  }
}

module createdSubnetJoin 'modules/subnet-join.bicep' = if (createVnet) {
  name: 'aci-runners-subnet-join'
  params: {
    vnetName: createVnet ? network.outputs.vnetName : 'none'
    subnetName: createVnet ? network.outputs.runnerSubnetName : 'none'
    principalId: identity.properties.principalId
  }
}

module existingSubnetJoin 'modules/subnet-join.bicep' = if (useExistingSubnet) {
  name: 'aci-runners-existing-subnet-join'
  scope: resourceGroup(existingSubnetSegments[2], existingSubnetSegments[4])
  params: {
    vnetName: existingSubnetSegments[8]
    subnetName: existingSubnetSegments[10]
    principalId: identity.properties.principalId
  }
}

var runnerSubnetId = createVnet ? network.outputs.runnerSubnetId : (useExistingSubnet ? existingRunnerSubnetId : '')

// ---------------------------------------------------------------------------------------
// App settings
// ---------------------------------------------------------------------------------------

// Each group is a list of {name, value}: the app settings array is their concat(). (A
// `for` over items() of an object would not do: the values are only known during the
// deployment, and Bicep needs a loop's array at its start.)

// AzureWebJobsStorage with the user-assigned identity (no connection string, no key).
// The queue bindings use connection "AzureWebJobsStorage", so they resolve these too.
var storageSettings = [
  {
    name: 'AzureWebJobsStorage__credential'
    value: 'managedidentity'
  }
  {
    name: 'AzureWebJobsStorage__clientId'
    value: identity.properties.clientId
  }
  {
    name: 'AzureWebJobsStorage__blobServiceUri'
    value: storage.properties.primaryEndpoints.blob
  }
  {
    name: 'AzureWebJobsStorage__queueServiceUri'
    value: storage.properties.primaryEndpoints.queue
  }
  {
    name: 'AzureWebJobsStorage__tableServiceUri'
    value: storage.properties.primaryEndpoints.table
  }
]

var monitoringSettings = [
  {
    name: 'APPLICATIONINSIGHTS_CONNECTION_STRING'
    value: insights.properties.ConnectionString
  }
  {
    name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
    value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
  }
]

// Flex Consumption rejects FUNCTIONS_WORKER_RUNTIME as an app setting (the runtime is
// functionAppConfig.runtime below) and sets the host version itself. Elastic Premium
// needs both, plus its Azure Files content share (key-based: no identity option).
var premiumSettings = isFlex ? [] : [
  {
    name: 'FUNCTIONS_WORKER_RUNTIME'
    value: 'custom'
  }
  {
    name: 'FUNCTIONS_EXTENSION_VERSION'
    value: '~4'
  }
  {
    name: 'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING'
    value: 'DefaultEndpointsProtocol=https;AccountName=${storage.name};EndpointSuffix=${environment().suffixes.storage};AccountKey=${storage.listKeys().keys[0].value}'
  }
  {
    name: 'WEBSITE_CONTENTSHARE'
    value: functionAppName
  }
]

// The handler's contract (DESIGN.md "Settings").
var handlerSettings = [
  {
    name: 'KEY_VAULT_URL'
    value: vault.properties.vaultUri
  }
  {
    name: 'GITHUB_WEBHOOK_SECRET_NAME'
    value: githubWebhookSecretName
  }
  {
    name: 'AZURE_SUBSCRIPTION_ID'
    value: subscription().subscriptionId
  }
  {
    name: 'RUNNER_RESOURCE_GROUP'
    value: runnerRgName
  }
  {
    name: 'RUNNER_LOCATION'
    value: effectiveRunnerLocation
  }
  {
    name: 'AZURE_CLIENT_ID'
    value: identity.properties.clientId
  }
  {
    name: 'RUNNER_LABELS'
    value: runnerLabels
  }
  {
    name: 'RUNNER_SCOPE'
    value: runnerScope
  }
  {
    name: 'RUNNER_GROUP_ID'
    value: string(runnerGroupId)
  }
  {
    name: 'RUNNER_IMAGE'
    value: runnerImage
  }
  {
    name: 'RUNNER_CPU'
    value: runnerCpu
  }
  {
    name: 'RUNNER_MEMORY_GB'
    value: runnerMemoryGb
  }
  {
    name: 'RUNNER_NAME_PREFIX'
    value: runnerNamePrefix
  }
  {
    name: 'MAX_RUNNERS'
    value: string(maxRunners)
  }
  {
    name: 'RUNNER_IDLE_TIMEOUT_MINUTES'
    value: string(runnerIdleTimeoutMinutes)
  }
  {
    name: 'RUNNER_MAX_LIFETIME_MINUTES'
    value: string(runnerMaxLifetimeMinutes)
  }
  {
    name: 'SWEEP_SCHEDULE'
    value: sweepSchedule
  }
  {
    name: 'OIDC_ISSUER'
    value: oidcIssuer
  }
  {
    name: 'GITHUB_API_URL'
    value: githubApiUrl
  }
  {
    name: 'AZURE_RESOURCE_MANAGER_URL'
    value: armUrl
  }
  {
    name: 'ACI_API_VERSION'
    value: aciApiVersion
  }
  {
    name: 'DRY_RUN'
    value: dryRun ? 'true' : 'false'
  }
  {
    name: 'RECONCILE_AFTER_SECONDS'
    value: string(reconcileAfterSeconds)
  }
]

// "Unset" settings stay out of the app rather than being set to an empty string.
var subnetSetting = empty(runnerSubnetId) ? [] : [
  {
    name: 'RUNNER_SUBNET_ID'
    value: runnerSubnetId
  }
]
var allowedRepositoriesSetting = empty(allowedRepositories) ? [] : [
  {
    name: 'ALLOWED_REPOSITORIES'
    value: allowedRepositories
  }
]
var allowedOwnersSetting = empty(allowedOwners) ? [] : [
  {
    name: 'ALLOWED_OWNERS'
    value: allowedOwners
  }
]
var oidcAudienceSetting = empty(oidcAudience) ? [] : [
  {
    name: 'OIDC_AUDIENCE'
    value: oidcAudience
  }
]
var shareSetting = maxRunnersPerRepository == 0 ? [] : [
  {
    name: 'MAX_RUNNERS_PER_REPOSITORY'
    value: string(maxRunnersPerRepository)
  }
]
// One credential, never both: the handler refuses to start with the App and the PAT set.
// An App without its client id keeps GITHUB_APP_KEY_NAME alone, which the handler refuses
// with a message naming GITHUB_APP_CLIENT_ID.
var credentialSettings = appMode ? concat(empty(githubAppClientId) ? [] : [
  {
    name: 'GITHUB_APP_CLIENT_ID'
    value: githubAppClientId
  }
], [
  {
    name: 'GITHUB_APP_KEY_NAME'
    value: githubAppKeyName
  }
]) : [
  {
    name: 'GITHUB_PAT_SECRET_NAME'
    value: githubPatSecretName
  }
]
var warmSettings = empty(warmRunners) ? [] : concat([
  {
    name: 'WARM_RUNNERS'
    value: warmRunners
  }
], empty(warmHours) ? [] : [
  {
    name: 'WARM_HOURS'
    value: warmHours
  }
])
var optionalHandlerSettings = concat(subnetSetting, allowedRepositoriesSetting, allowedOwnersSetting, oidcAudienceSetting, shareSetting, credentialSettings, warmSettings)

var appSettings = concat(storageSettings, monitoringSettings, premiumSettings, handlerSettings, optionalHandlerSettings)

// ---------------------------------------------------------------------------------------
// Function App
// ---------------------------------------------------------------------------------------

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: planName
  location: location
  tags: allTags
  kind: isFlex ? 'functionapp' : 'elastic'
  sku: isFlex ? {
    name: 'FC1'
    tier: 'FlexConsumption'
  } : {
    name: elasticPremiumSku
    tier: 'ElasticPremium'
  }
  // Properties Flex does not know are left out entirely (not sent as null).
  properties: union({
    reserved: true
  }, isFlex ? {} : {
    maximumElasticWorkerCount: 20
  })
}

// Flex Consumption refuses several classic siteConfig properties even when null, so
// its siteConfig carries the app settings only.
var flexSiteConfig = {
  appSettings: appSettings
}
var premiumSiteConfig = {
  appSettings: appSettings
  linuxFxVersion: ''
  minTlsVersion: '1.2'
  ftpsState: 'Disabled'
  use32BitWorkerProcess: false
}

var flexFunctionAppConfig = {
  functionAppConfig: {
    deployment: {
      storage: {
        type: 'blobContainer'
        value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
        authentication: {
          type: 'UserAssignedIdentity'
          userAssignedIdentityResourceId: identity.id
        }
      }
    }
    scaleAndConcurrency: {
      instanceMemoryMB: flexInstanceMemoryMB
      maximumInstanceCount: flexMaximumInstanceCount
    }
    runtime: {
      name: 'custom'
      version: '1.0'
    }
  }
}

resource functionApp 'Microsoft.Web/sites@2024-04-01' = {
  name: functionAppName
  location: location
  tags: union(allTags, {
    'azd-service-name': azdServiceName
  })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: {
      '${identity.id}': {}
    }
  }
  properties: union({
    serverFarmId: plan.id
    httpsOnly: true
    siteConfig: isFlex ? flexSiteConfig : premiumSiteConfig
  }, isFlex ? flexFunctionAppConfig : {
    reserved: true
  })
  // The host starts as soon as the site exists: let it find its storage rights and
  // (on Flex) its package container in place.
  dependsOn: [
    storageRoles
    deploymentContainer
    requestQueue
    vaultSecretsUser
    insightsPublisher
  ]
}

// ---------------------------------------------------------------------------------------
// Outputs (azd stores them in .azure/<env>/.env)
// ---------------------------------------------------------------------------------------

output FUNCTION_APP_NAME string = functionApp.name
output WEBHOOK_URL string = 'https://${functionApp.properties.defaultHostName}/api/github/webhook'
output RUNNERS_URL string = 'https://${functionApp.properties.defaultHostName}/api/runners'
output KEY_VAULT_URL string = vault.properties.vaultUri
output KEY_VAULT_NAME string = vault.name
output IDENTITY_CLIENT_ID string = identity.properties.clientId
output RUNNER_RESOURCE_GROUP string = runnerRgName
output RUNNER_SUBNET_ID string = runnerSubnetId
output HOSTING_PLAN string = hostingPlan
