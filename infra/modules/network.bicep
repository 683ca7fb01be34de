// Optional virtual network for the runners: one subnet delegated to
// Microsoft.ContainerInstance/containerGroups (required for ACI VNet injection), with
// a NAT gateway for outbound traffic (runners must reach GitHub; subnets of new VNets
// no longer get implicit "default outbound access") and an NSG with only the default
// rules (no inbound from the internet).
targetScope = 'resourceGroup'

param location string
param tags object = {}

@description('Name of the virtual network to create.')
param vnetName string

@description('Address space of the virtual network.')
param addressPrefix string

@description('Address range of the runner subnet (one address per running container group, plus 5 reserved).')
param runnerSubnetPrefix string

@description('Name of the runner subnet.')
param runnerSubnetName string = 'runners'

resource natPublicIp 'Microsoft.Network/publicIPAddresses@2023-11-01' = {
  name: 'pip-${vnetName}-nat'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    publicIPAllocationMethod: 'Static'
    publicIPAddressVersion: 'IPv4'
  }
}

resource natGateway 'Microsoft.Network/natGateways@2023-11-01' = {
  name: 'ng-${vnetName}'
  location: location
  tags: tags
  sku: {
    name: 'Standard'
  }
  properties: {
    idleTimeoutInMinutes: 4
    publicIpAddresses: [
      {
        id: natPublicIp.id
      }
    ]
  }
}

resource runnerNsg 'Microsoft.Network/networkSecurityGroups@2023-11-01' = {
  name: 'nsg-${vnetName}-${runnerSubnetName}'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: vnetName
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: runnerSubnetName
        properties: {
          addressPrefix: runnerSubnetPrefix
          natGateway: {
            id: natGateway.id
          }
          networkSecurityGroup: {
            id: runnerNsg.id
          }
          delegations: [
            {
              name: 'aci'
              properties: {
                serviceName: 'Microsoft.ContainerInstance/containerGroups'
              }
            }
          ]
        }
      }
    ]
  }
}

output vnetName string = vnet.name
output runnerSubnetName string = runnerSubnetName
output runnerSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, runnerSubnetName)
output natPublicIpAddress string = natPublicIp.properties.ipAddress
