// GitHub App mode: the Function's identity may sign with the App's key, and do nothing else
// with it or with any other key.
//
// The built-in "Key Vault Crypto User" role is too broad for this: it also reads, updates,
// backs up, encrypts, decrypts, wraps and unwraps, on every key in its scope. This custom role
// holds the one data action the handler uses (keys/sign/action, Key Vault's `sign`) and is
// assigned at the scope of the one key, so the identity can neither sign with another key nor
// do anything but sign with this one. The private key never leaves the vault.
//
// The key must exist when this is deployed (a role assignment needs its scope): import it
// first (docs/deploy.md), then deploy with githubAppKeyImported=true.
targetScope = 'resourceGroup'

@description('Name of the Key Vault that holds the App key.')
param vaultName string

@description('Name of the Key Vault key (imported from the App\'s private key PEM).')
param keyName string

@description('Object (principal) id of the user-assigned managed identity that runs the Function.')
param principalId string

var signDataActions = [
  'Microsoft.KeyVault/vaults/keys/sign/action'
]

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource appKey 'Microsoft.KeyVault/vaults/keys@2023-07-01' existing = {
  parent: vault
  name: keyName
}

// Custom role names are unique per tenant: make this one unique per resource group.
resource signRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'aci-runners-app-key-sign')
  properties: {
    roleName: 'aci-runners App key signer (${resourceGroup().name}, ${uniqueString(resourceGroup().id)})'
    description: 'Sign with a Key Vault key, nothing else (aci-runners signs its GitHub App JWT).'
    type: 'CustomRole'
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: signDataActions
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource signAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appKey.id, principalId, signRole.id)
  scope: appKey
  properties: {
    roleDefinitionId: signRole.id
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'aci-runners Function signs its GitHub App JWT with this key'
  }
}

output roleDefinitionId string = signRole.id
