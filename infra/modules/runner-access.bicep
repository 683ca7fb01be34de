// Least rights for the Function's identity in the resource group where runner
// container groups are created: a custom role that can only read, create/update and
// delete container groups (plus read the resource group itself), assigned to the
// user-assigned identity at this resource group's scope.
//
// Deployed with `scope: resourceGroup(<runner resource group>)` from main.bicep, so the
// runner group may be the app's own resource group or another existing one.
targetScope = 'resourceGroup'

@description('Object (principal) id of the user-assigned managed identity that runs the Function.')
param principalId string

var containerGroupActions = [
  'Microsoft.ContainerInstance/containerGroups/read'
  'Microsoft.ContainerInstance/containerGroups/write'
  'Microsoft.ContainerInstance/containerGroups/delete'
  'Microsoft.Resources/subscriptions/resourceGroups/read'
]

// Custom role names are unique per tenant: make this one unique per resource group.
resource containerGroupsRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'aci-runners-container-groups')
  properties: {
    roleName: 'aci-runners container groups (${resourceGroup().name}, ${uniqueString(resourceGroup().id)})'
    description: 'Create, read and delete Azure Container Instances container groups in one resource group (aci-runners).'
    type: 'CustomRole'
    permissions: [
      {
        actions: containerGroupActions
        notActions: []
        dataActions: []
        notDataActions: []
      }
    ]
    assignableScopes: [
      resourceGroup().id
    ]
  }
}

resource containerGroupsAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, principalId, containerGroupsRole.id)
  properties: {
    roleDefinitionId: containerGroupsRole.id
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'aci-runners: manage runner container groups in this resource group'
  }
}

output roleDefinitionId string = containerGroupsRole.id
