// Lets the Function's identity place container groups in one subnet (ACI VNet
// injection needs Microsoft.Network/virtualNetworks/subnets/join/action on the subnet).
// A custom role with only that action, assigned at the subnet's scope.
//
// Deployed into the resource group that holds the virtual network: the template's own
// group when it creates the VNet, or the group of an existing subnet passed in.
targetScope = 'resourceGroup'

@description('Name of the virtual network that holds the runner subnet.')
param vnetName string

@description('Name of the runner subnet (must be delegated to Microsoft.ContainerInstance/containerGroups).')
param subnetName string

@description('Object (principal) id of the user-assigned managed identity that runs the Function.')
param principalId string

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' existing = {
  name: vnetName
}

resource subnet 'Microsoft.Network/virtualNetworks/subnets@2023-11-01' existing = {
  parent: vnet
  name: subnetName
}

resource subnetJoinRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'aci-runners-subnet-join')
  properties: {
    roleName: 'aci-runners subnet join (${resourceGroup().name}, ${uniqueString(resourceGroup().id)})'
    description: 'Join container groups to a subnet (aci-runners).'
    type: 'CustomRole'
    permissions: [
      {
        actions: [
          'Microsoft.Network/virtualNetworks/subnets/join/action'
        ]
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

resource subnetJoinAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(subnet.id, principalId, subnetJoinRole.id)
  scope: subnet
  properties: {
    roleDefinitionId: subnetJoinRole.id
    principalId: principalId
    principalType: 'ServicePrincipal'
    description: 'aci-runners: join runner container groups to this subnet'
  }
}
