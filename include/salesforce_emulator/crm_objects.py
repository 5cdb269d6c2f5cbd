"""The CRM objects: User, Account, Contact, Lead, Opportunity, OpportunityContactRole.

Activities point at these (WhoId, WhatId, RelationId); they live apart from the activity
objects so that each family reads as one page, and ``objects`` gathers both into the registry.
"""

from __future__ import annotations

from salesforce_emulator.ids import (
    ACCOUNT_PREFIX,
    CONTACT_PREFIX,
    LEAD_PREFIX,
    OPPORTUNITY_CONTACT_ROLE_PREFIX,
    OPPORTUNITY_PREFIX,
    USER_PREFIX,
)
from salesforce_emulator.sobject import Field, SObject, owner, read_only, system_fields


def _name_formula() -> str:
    return "TRIM(COALESCE(\"FirstName\" || ' ', '') || COALESCE(\"LastName\", ''))"


USER = SObject(
    "User",
    USER_PREFIX,
    "User",
    "Users",
    (
        *system_fields(),
        Field("Username", "string", "Username", 80, nillable=False),
        Field("FirstName", "string", "First Name", 40),
        Field("LastName", "string", "Last Name", 80, nillable=False),
        read_only("Name", "string", "Full Name", length=121, formula=_name_formula()),
        Field("Email", "email", "Email", 128, nillable=False),
        Field("Alias", "string", "Alias", 8),
        Field("Title", "string", "Title", 80),
        Field("IsActive", "boolean", "Active", nillable=False, default=True),
    ),
)

ACCOUNT = SObject(
    "Account",
    ACCOUNT_PREFIX,
    "Account",
    "Accounts",
    (
        *system_fields(),
        Field("Name", "string", "Account Name", 255, nillable=False),
        Field(
            "Type",
            "picklist",
            "Account Type",
            255,
            picklist=("Prospect", "Customer - Direct", "Customer - Channel", "Partner", "Other"),
        ),
        Field(
            "Industry",
            "picklist",
            "Industry",
            255,
            picklist=(
                "Technology",
                "Finance",
                "Healthcare",
                "Manufacturing",
                "Retail",
                "Education",
                "Media",
                "Energy",
                "Other",
            ),
        ),
        Field("Website", "string", "Website", 255, describe_type="url"),
        Field("Phone", "string", "Account Phone", 40, describe_type="phone"),
        Field("BillingCity", "string", "Billing City", 40),
        Field("BillingCountry", "string", "Billing Country", 80),
        Field("NumberOfEmployees", "int", "Employees"),
        Field("AnnualRevenue", "double", "Annual Revenue", describe_type="currency"),
        owner(),
    ),
    child_relationships=(
        ("Contact", "AccountId", "Contacts", False, False),
        ("Opportunity", "AccountId", "Opportunities", False, False),
    ),
)

CONTACT = SObject(
    "Contact",
    CONTACT_PREFIX,
    "Contact",
    "Contacts",
    (
        *system_fields(),
        Field("FirstName", "string", "First Name", 40),
        Field("LastName", "string", "Last Name", 80, nillable=False),
        read_only("Name", "string", "Full Name", length=121, formula=_name_formula()),
        Field("Email", "email", "Email", 80),
        Field("Title", "string", "Title", 128),
        Field("Phone", "string", "Business Phone", 40, describe_type="phone"),
        Field(
            "AccountId",
            "reference",
            "Account ID",
            18,
            reference_to=("Account",),
            relationship_name="Account",
        ),
        Field(
            "LeadSource",
            "picklist",
            "Lead Source",
            255,
            picklist=("Web", "Phone Inquiry", "Partner Referral", "Trade Show", "Other"),
        ),
        owner(),
    ),
)

LEAD = SObject(
    "Lead",
    LEAD_PREFIX,
    "Lead",
    "Leads",
    (
        *system_fields(),
        Field("FirstName", "string", "First Name", 40),
        Field("LastName", "string", "Last Name", 80, nillable=False),
        read_only("Name", "string", "Full Name", length=121, formula=_name_formula()),
        Field("Company", "string", "Company", 255, nillable=False),
        Field("Email", "email", "Email", 80),
        Field("Title", "string", "Title", 128),
        Field(
            "Status",
            "picklist",
            "Status",
            255,
            nillable=False,
            default="Open - Not Contacted",
            picklist=(
                "Open - Not Contacted",
                "Working - Contacted",
                "Closed - Converted",
                "Closed - Not Converted",
            ),
        ),
        Field(
            "LeadSource",
            "picklist",
            "Lead Source",
            255,
            picklist=("Web", "Phone Inquiry", "Partner Referral", "Trade Show", "Other"),
        ),
        # Createable so that an import can load converted Leads, as Salesforce allows.
        Field(
            "IsConverted", "boolean", "Converted", updateable=False, nillable=False, default=False
        ),
        Field("ConvertedDate", "date", "Converted Date", updateable=False),
        Field(
            "ConvertedContactId",
            "reference",
            "Converted Contact ID",
            18,
            updateable=False,
            reference_to=("Contact",),
            relationship_name="ConvertedContact",
        ),
        Field(
            "ConvertedAccountId",
            "reference",
            "Converted Account ID",
            18,
            updateable=False,
            reference_to=("Account",),
            relationship_name="ConvertedAccount",
        ),
        owner(),
    ),
)

_CLOSED_STAGES = "('Closed Won', 'Closed Lost')"
OPPORTUNITY = SObject(
    "Opportunity",
    OPPORTUNITY_PREFIX,
    "Opportunity",
    "Opportunities",
    (
        *system_fields(),
        Field("Name", "string", "Name", 120, nillable=False),
        Field(
            "AccountId",
            "reference",
            "Account ID",
            18,
            reference_to=("Account",),
            relationship_name="Account",
        ),
        Field(
            "StageName",
            "picklist",
            "Stage",
            255,
            nillable=False,
            picklist=(
                "Prospecting",
                "Qualification",
                "Needs Analysis",
                "Proposal/Price Quote",
                "Negotiation/Review",
                "Closed Won",
                "Closed Lost",
            ),
        ),
        Field("CloseDate", "date", "Close Date", nillable=False),
        Field("Amount", "double", "Amount", describe_type="currency"),
        read_only(
            "IsClosed",
            "boolean",
            "Closed",
            nillable=False,
            formula=f'"StageName" IN {_CLOSED_STAGES}',
        ),
        read_only(
            "IsWon", "boolean", "Won", nillable=False, formula="\"StageName\" = 'Closed Won'"
        ),
        owner(),
    ),
)

OPPORTUNITY_CONTACT_ROLE = SObject(
    "OpportunityContactRole",
    OPPORTUNITY_CONTACT_ROLE_PREFIX,
    "Opportunity Contact Role",
    "Opportunity Contact Role",
    (
        *system_fields(),
        Field(
            "OpportunityId",
            "reference",
            "Opportunity ID",
            18,
            updateable=False,
            nillable=False,
            reference_to=("Opportunity",),
            relationship_name="Opportunity",
        ),
        Field(
            "ContactId",
            "reference",
            "Contact ID",
            18,
            nillable=False,
            reference_to=("Contact",),
            relationship_name="Contact",
        ),
        Field(
            "Role",
            "picklist",
            "Role",
            255,
            picklist=(
                "Decision Maker",
                "Economic Buyer",
                "Technical Buyer",
                "Influencer",
                "Evaluator",
                "Other",
            ),
        ),
        Field("IsPrimary", "boolean", "Primary", nillable=False, default=False),
    ),
)
