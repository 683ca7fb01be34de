// The job's timeline in Azure: a workbook with the charts `handler report` draws, and alert
// rules, all over the Application Insights `traces` table. The queries live in infra/queries
// (docs/operations.md shows each one).

@description('Location of the workbook and the alert rules.')
param location string

@description('Tags for every resource.')
param tags object

@description('Resource id of the Application Insights component the handler logs to.')
param insightsId string

@description('Alert when the p95 of the time to a runner over the last hour exceeds this many seconds.')
@minValue(1)
param timeToRunnerP95AlertSeconds int

@description('Action groups the alerts notify (resource ids); empty: alerts show in the portal only.')
param actionGroupIds array

var queries = {
  timeToRunner: loadTextContent('../queries/time-to-runner.kql')
  distribution: loadTextContent('../queries/time-to-runner-distribution.kql')
  whereTheTimeWent: loadTextContent('../queries/where-the-time-went.kql')
  costByRepository: loadTextContent('../queries/cost-by-repository.kql')
  jobsPerDay: loadTextContent('../queries/jobs-per-day.kql')
}

var workbookContent = {
  version: 'Notebook/1.0'
  items: [
    {
      type: 1
      content: {
        json: '## aci-runners: time to a runner and what it cost\nFrom the handler lines in `traces` (job.started, provision result=created, group.deleted). `handler report` draws the same figures from an export.'
      }
      name: 'intro'
    }
    {
      type: 3
      content: {
        version: 'KqlItem/1.0'
        query: queries.timeToRunner
        size: 0
        title: 'Time to a runner over time (p50, p95, seconds)'
        timeContext: {
          durationMs: 604800000
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'timechart'
      }
      name: 'chart-0'
    }
    {
      type: 3
      content: {
        version: 'KqlItem/1.0'
        query: queries.distribution
        size: 0
        title: 'Time to a runner, distribution'
        timeContext: {
          durationMs: 604800000
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'barchart'
      }
      name: 'chart-1'
    }
    {
      type: 3
      content: {
        version: 'KqlItem/1.0'
        query: queries.costByRepository
        size: 0
        title: 'Estimated cost by repository'
        timeContext: {
          durationMs: 604800000
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
      name: 'chart-2'
    }
    {
      type: 3
      content: {
        version: 'KqlItem/1.0'
        query: queries.whereTheTimeWent
        size: 0
        title: 'Where the time went (webhook to PUT, PUT to job start)'
        timeContext: {
          durationMs: 604800000
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
      name: 'chart-3'
    }
    {
      type: 3
      content: {
        version: 'KqlItem/1.0'
        query: queries.jobsPerDay
        size: 0
        title: 'Jobs, failures and time to a runner per day and repository'
        timeContext: {
          durationMs: 604800000
        }
        queryType: 0
        resourceType: 'microsoft.insights/components'
        visualization: 'table'
      }
      name: 'chart-4'
    }
  ]
  fallbackResourceIds: [
    insightsId
  ]
}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, insightsId, 'aci-runners-timeline')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'aci-runners: time to a runner and cost'
    category: 'workbook'
    sourceId: insightsId
    serializedData: string(workbookContent)
  }
}

resource poisonQueue 'Microsoft.Insights/scheduledQueryRules@2021-08-01' = {
  name: 'aci-runners-poison-queue'
  location: location
  tags: tags
  properties: {
    displayName: 'aci-runners-poison-queue'
    description: 'A runner request went to the runner-requests-poison queue: it failed for a day. See docs/operations.md, section 4.'
    severity: 1
    enabled: true
    scopes: [
      insightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: loadTextContent('../queries/alert-poison-queue.kql')
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

resource sweepFailed 'Microsoft.Insights/scheduledQueryRules@2021-08-01' = {
  name: 'aci-runners-sweep-failed'
  location: location
  tags: tags
  properties: {
    displayName: 'aci-runners-sweep-failed'
    description: 'A sweep counted failed > 0 in its summary line. See docs/operations.md, section 4.'
    severity: 2
    enabled: true
    scopes: [
      insightsId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: loadTextContent('../queries/alert-sweep-failed.kql')
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

resource timeToRunnerP95 'Microsoft.Insights/scheduledQueryRules@2021-08-01' = {
  name: 'aci-runners-time-to-runner-p95'
  location: location
  tags: tags
  properties: {
    displayName: 'aci-runners-time-to-runner-p95'
    description: 'The p95 of the time to a runner over the last hour is over ${timeToRunnerP95AlertSeconds} s.'
    severity: 3
    enabled: true
    scopes: [
      insightsId
    ]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: loadTextContent('../queries/alert-time-to-runner-p95.kql')
          timeAggregation: 'Maximum'
          metricMeasureColumn: 'p95_s'
          operator: 'GreaterThan'
          threshold: timeToRunnerP95AlertSeconds
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    autoMitigate: true
    actions: {
      actionGroups: actionGroupIds
    }
  }
}

output workbookId string = workbook.id
