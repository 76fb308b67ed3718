"""The allowlist of the de-identifier: which standard attributes may be copied, and how.

Only the attributes named here survive, at any depth (main dataset and sequence items
alike); everything else is dropped by construction: private tags, overlays (60xx), curves
(50xx), Icon Image Sequence, Digital Signatures, Original/Encrypted Attributes, Request
Attributes, Referenced Patient Sequence, Other Patient IDs, names, addresses, institution,
physicians, operators, device serial numbers, station names, AE titles, and any attribute a
vendor or a later edition of the standard adds.

How a copied value is treated follows from the attribute's VR in the data dictionary (see
``deid_copy``): UIDs are replaced unless structural, dates shifted, times and numbers kept,
code strings kept when they are valid code strings, free text cleaned through the
vocabulary (``deid_vocabulary``), sequences copied item by item with the same allowlist.
The tables below name the exceptions to that default.
"""

from __future__ import annotations


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ALLOWED_KEYWORDS: frozenset[str] = _words(
    # SOP common, general study/series/image, frame of reference, equipment
    """
    SOPClassUID SOPInstanceUID InstanceCreationDate InstanceCreationTime
    InstanceCreatorUID InstanceNumber ContentQualification StudyInstanceUID StudyDate
    StudyTime StudyDescription SeriesInstanceUID SeriesDate SeriesTime SeriesNumber
    SeriesDescription Modality ProtocolName Laterality BodyPartExamined PatientPosition
    AnatomicalOrientationType PerformedProcedureStepStartDate PerformedProcedureStepStartTime
    PerformedProcedureStepDescription SmallestPixelValueInSeries LargestPixelValueInSeries
    FrameOfReferenceUID SynchronizationFrameOfReferenceUID ContentDate ContentTime
    AcquisitionDate AcquisitionTime AcquisitionDateTime AcquisitionNumber AcquisitionDuration
    ImageType ImageComments ImagesInAcquisition QualityControlImage BurnedInAnnotation
    RecognizableVisualFeatures LossyImageCompression LossyImageCompressionRatio
    LossyImageCompressionMethod PresentationLUTShape IrradiationEventUID PatientOrientation
    DerivationDescription ImageLaterality Manufacturer ManufacturerModelName
    ConversionType PresentationIntentType
    """
    # patient characteristics (Retain Patient Characteristics)
    """
    PatientAge PatientSex PatientSize PatientWeight PregnancyStatus SmokingStatus
    """
    # image plane, image pixel, multi-frame, cine, LUTs
    """
    PixelSpacing ImageOrientationPatient ImagePositionPatient SliceThickness SliceLocation
    SpacingBetweenSlices ImagerPixelSpacing PixelSpacingCalibrationType
    NominalScannedPixelSpacing SamplesPerPixel PhotometricInterpretation Rows Columns
    BitsAllocated BitsStored HighBit PixelRepresentation PlanarConfiguration PixelAspectRatio
    SmallestImagePixelValue LargestImagePixelValue PixelPaddingValue PixelPaddingRangeLimit
    RedPaletteColorLookupTableDescriptor GreenPaletteColorLookupTableDescriptor
    BluePaletteColorLookupTableDescriptor AlphaPaletteColorLookupTableDescriptor
    RedPaletteColorLookupTableData GreenPaletteColorLookupTableData
    BluePaletteColorLookupTableData AlphaPaletteColorLookupTableData
    SegmentedRedPaletteColorLookupTableData SegmentedGreenPaletteColorLookupTableData
    SegmentedBluePaletteColorLookupTableData SegmentedAlphaPaletteColorLookupTableData
    PaletteColorLookupTableUID PixelData FloatPixelData DoubleFloatPixelData
    ExtendedOffsetTable ExtendedOffsetTableLengths NumberOfFrames FrameIncrementPointer
    FrameTime FrameTimeVector FrameDelay ActualFrameDuration CineRate
    RecommendedDisplayFrameRate PreferredPlaybackSequencing StartTrim StopTrim
    RescaleIntercept RescaleSlope RescaleType ModalityLUTSequence LUTDescriptor
    LUTExplanation ModalityLUTType LUTData WindowCenter WindowWidth
    WindowCenterWidthExplanation VOILUTFunction VOILUTSequence PresentationLUTSequence
    PixelIntensityRelationship PixelIntensityRelationshipSign ColorSpace
    """
    # multi-frame functional groups and dimensions
    """
    SharedFunctionalGroupsSequence PerFrameFunctionalGroupsSequence PixelMeasuresSequence
    PlanePositionSequence PlaneOrientationSequence FrameContentSequence
    FrameAcquisitionNumber FrameReferenceDateTime FrameAcquisitionDateTime
    FrameAcquisitionDuration CardiacCyclePosition RespiratoryCyclePosition
    DimensionIndexValues TemporalPositionIndex StackID InStackPositionNumber FrameLabel
    PixelValueTransformationSequence FrameVOILUTSequence ReferencedImageSequence
    DerivationImageSequence SourceImageSequence DerivationCodeSequence
    PurposeOfReferenceCodeSequence SpatialLocationsPreserved CardiacSynchronizationSequence
    NominalCardiacTriggerDelayTime RRIntervalTimeNominal FrameAnatomySequence AnatomicRegionSequence
    AnatomicRegionModifierSequence FrameLaterality FrameType PixelPresentation
    VolumetricProperties VolumeBasedCalculationTechnique ComplexImageComponent
    AcquisitionContrast MRImageFrameTypeSequence CTImageFrameTypeSequence
    IrradiationEventIdentificationSequence PlanePositionVolumeSequence
    PlaneOrientationVolumeSequence TemporalPositionSequence ImageDataTypeSequence
    DataType RealWorldValueMappingSequence RealWorldValueFirstValueMapped
    RealWorldValueLastValueMapped RealWorldValueIntercept RealWorldValueSlope
    RealWorldValueLUTData LUTLabel DoubleFloatRealWorldValueFirstValueMapped
    DoubleFloatRealWorldValueLastValueMapped MeasurementUnitsCodeSequence
    QuantityDefinitionSequence UnassignedSharedConvertedAttributesSequence
    UnassignedPerFrameConvertedAttributesSequence DimensionOrganizationSequence
    DimensionOrganizationUID DimensionOrganizationType DimensionIndexSequence
    DimensionIndexPointer FunctionalGroupPointer DimensionDescriptionLabel
    ConcatenationUID InConcatenationNumber InConcatenationTotalNumber
    ConcatenationFrameOffsetNumber SOPInstanceUIDOfConcatenationSource
    RespiratorySynchronizationSequence ContrastBolusUsageSequence ContrastBolusAgentNumber
    ContrastBolusAgentAdministered ContrastBolusAgentDetected ContrastBolusAgentPhase
    """
    # VL whole slide microscopy (geometry of the tiled pixel matrix, focus, optical path
    # structure and codes; no free text: specimen, container and path descriptions stay out)
    """
    TotalPixelMatrixColumns TotalPixelMatrixRows TotalPixelMatrixFocalPlanes
    TotalPixelMatrixOriginSequence XOffsetInSlideCoordinateSystem
    YOffsetInSlideCoordinateSystem ZOffsetInSlideCoordinateSystem ImageOrientationSlide
    ImagedVolumeWidth ImagedVolumeHeight ImagedVolumeDepth NumberOfOpticalPaths
    NumberOfFocalPlanes DistanceBetweenFocalPlanes FocusMethod ExtendedDepthOfField
    SpecimenLabelInImage WholeSlideMicroscopyImageFrameTypeSequence
    PlanePositionSlideSequence ColumnPositionInTotalImagePixelMatrix
    RowPositionInTotalImagePixelMatrix OpticalPathSequence OpticalPathIdentifier
    OpticalPathIdentificationSequence IlluminationTypeCodeSequence
    IlluminationColorCodeSequence IlluminationWaveLength ObjectiveLensPower
    ObjectiveLensNumericalAperture
    """
    # MR acquisition
    """
    ScanningSequence SequenceVariant ScanOptions MRAcquisitionType AngioFlag RepetitionTime
    EchoTime InversionTime NumberOfAverages ImagingFrequency ImagedNucleus EchoNumbers
    MagneticFieldStrength NumberOfPhaseEncodingSteps EchoTrainLength PercentSampling
    PercentPhaseFieldOfView PixelBandwidth TriggerTime NominalInterval HeartRate
    CardiacNumberOfImages AcquisitionMatrix InPlanePhaseEncodingDirection FlipAngle
    VariableFlipAngleFlag SAR dBdt TemporalPositionIdentifier NumberOfTemporalPositions
    TemporalResolution DiffusionBValue DiffusionGradientOrientation DiffusionDirectionality
    MRTimingAndRelatedParametersSequence MREchoSequence EffectiveEchoTime
    MRFOVGeometrySequence MRModifierSequence MRDiffusionSequence
    DiffusionGradientDirectionSequence DiffusionBMatrixSequence DiffusionBValueXX
    DiffusionBValueXY DiffusionBValueXZ DiffusionBValueYY DiffusionBValueYZ
    DiffusionBValueZZ MRAveragesSequence MRVelocityEncodingSequence VelocityEncodingDirection
    VelocityEncodingMinimumValue VelocityEncodingMaximumValue MRImagingModifierSequence
    MRAcquisitionFrequencyEncodingSteps MRAcquisitionPhaseEncodingStepsInPlane
    MRAcquisitionPhaseEncodingStepsOutOfPlane EchoPulseSequence SteadyStatePulseSequence
    EchoPlanarPulseSequence SpectrallySelectedSuppression SpectrallySelectedExcitation
    MagnetizationTransfer T2Preparation BloodSignalNulling SaturationRecovery
    InversionRecovery FlowCompensation Spoiling ParallelAcquisition
    ParallelAcquisitionTechnique ParallelReductionFactorInPlane
    ParallelReductionFactorOutOfPlane PartialFourier PartialFourierDirection
    GeometryOfKSpaceTraversal SegmentedKSpaceTraversal CoverageOfKSpace RFEchoTrainLength
    GradientEchoTrainLength ResonantNucleus KSpaceFiltering MultiPlanarExcitation
    PhaseContrast TimeOfFlightContrast ReceiveCoilType TransmitCoilType
    """
    # CT, X-ray, mammography, ultrasound, nuclear medicine
    """
    KVP DataCollectionDiameter ReconstructionDiameter DistanceSourceToDetector
    DistanceSourceToPatient DistanceSourceToIsocenter GantryDetectorTilt TableHeight
    RotationDirection ExposureTime XRayTubeCurrent Exposure ExposureInuAs
    ExposureInmAs FilterType GeneratorPower FocalSpots ConvolutionKernel RevolutionTime
    SingleCollimationWidth TotalCollimationWidth TableSpeed TableFeedPerRotation
    SpiralPitchFactor CTDIvol DataCollectionCenterPatient ReconstructionTargetCenterPatient
    ReconstructionAlgorithm ExposureModulationType CTAcquisitionTypeSequence
    AcquisitionType TubeAngle ConstantVolumeFlag FluoroscopyFlag CTAcquisitionDetailsSequence
    CTTableDynamicsSequence TableSpeed CTPositionSequence TablePosition CTGeometrySequence
    CTReconstructionSequence ReconstructionFieldOfView ReconstructionPixelSpacing
    ReconstructionAngle CTExposureSequence CTXRayDetailsSequence
    CalciumScoringMassFactorPatient CalciumScoringMassFactorDevice
    ViewPosition Sensitivity ExposureIndex TargetExposureIndex DeviationIndex
    FieldOfViewShape FieldOfViewDimensions FieldOfViewOrigin FieldOfViewRotation
    FieldOfViewHorizontalFlip Grid BodyPartThickness CompressionForce PositionerType
    PositionerPrimaryAngle PositionerSecondaryAngle PositionerMotion AnodeTargetMaterial
    RelativeXRayExposure EstimatedRadiographicMagnificationFactor ViewCodeSequence
    ViewModifierCodeSequence ImageAndFluoroscopyAreaDoseProduct EntranceDoseInmGy
    OrganDose PartialView PartialViewDescription BreastImplantPresent
    SequenceOfUltrasoundRegions RegionSpatialFormat RegionDataType RegionFlags
    RegionLocationMinX0 RegionLocationMinY0 RegionLocationMaxX1 RegionLocationMaxY1
    ReferencePixelX0 ReferencePixelY0 PhysicalUnitsXDirection PhysicalUnitsYDirection
    ReferencePixelPhysicalValueX ReferencePixelPhysicalValueY PhysicalDeltaX PhysicalDeltaY
    TransducerFrequency PulseRepetitionFrequency DopplerCorrectionAngle SteeringAngle
    DopplerSampleVolumeXPosition DopplerSampleVolumeYPosition TMLinePositionX0
    TMLinePositionY0 TMLinePositionX1 TMLinePositionY1 PixelComponentOrganization
    PixelComponentMask PixelComponentRangeStart PixelComponentRangeStop
    PixelComponentPhysicalUnits PixelComponentDataType NumberOfTableBreakPoints
    TableOfXBreakPoints TableOfYBreakPoints NumberOfTableEntries TableOfPixelValues
    TableOfParameterValues TransducerType UltrasoundColorDataPresent MechanicalIndex
    BoneThermalIndex CranialThermalIndex SoftTissueThermalIndex DepthOfScanField
    Units CorrectedImage DecayCorrection RadiopharmaceuticalInformationSequence
    RadiopharmaceuticalStartTime RadiopharmaceuticalStartDateTime
    RadiopharmaceuticalStopDateTime RadionuclideTotalDose RadionuclideHalfLife
    RadionuclidePositronFraction RadiopharmaceuticalVolume RadionuclideCodeSequence
    RadiopharmaceuticalCodeSequence AdministrationRouteCodeSequence Radiopharmaceutical
    DecayFactor DoseCalibrationFactor ScatterFractionFactor DeadTimeFactor SeriesType
    CountsSource RandomsCorrectionMethod FrameReferenceTime ImageIndex
    SliceSensitivityFactor NumberOfSlices NumberOfTimeSlices CollimatorType
    MaskSubtractionSequence MaskOperation MaskFrameNumbers ContrastFrameAveraging
    MaskSubPixelShift TIDOffset MaskVisibilityPercentage RecommendedViewingMode RWavePointer
    RadiationSetting CollimatorShape CollimatorLeftVerticalEdge CollimatorRightVerticalEdge
    CollimatorUpperHorizontalEdge CollimatorLowerHorizontalEdge CenterOfCircularCollimator
    RadiusOfCircularCollimator VerticesOfThePolygonalCollimator ShutterShape
    ShutterLeftVerticalEdge ShutterRightVerticalEdge ShutterUpperHorizontalEdge
    ShutterLowerHorizontalEdge CenterOfCircularShutter RadiusOfCircularShutter
    VerticesOfThePolygonalShutter ShutterPresentationValue
    """
    # references (their instance UIDs are replaced consistently)
    """
    ReferencedSOPClassUID ReferencedSOPInstanceUID ReferencedFrameNumber
    ReferencedSegmentNumber ReferencedSeriesSequence ReferencedInstanceSequence
    ReferencedSOPSequence ReferencedFrameOfReferenceUID ReferencedFrameOfReferenceSequence
    StudiesContainingOtherReferencedInstancesSequence ReferencedStudySequence
    CurrentRequestedProcedureEvidenceSequence PertinentOtherEvidenceSequence
    IdenticalDocumentsSequence PredecessorDocumentsSequence ReferencedPresentationStateSequence
    ConversionSourceAttributesSequence ReferencedRealWorldValueMappingInstanceSequence
    """
    # coded concepts
    """
    CodeValue CodingSchemeDesignator CodingSchemeVersion CodeMeaning ContextIdentifier
    ContextUID MappingResource MappingResourceUID ContextGroupVersion
    ContextGroupExtensionFlag ContextGroupLocalVersion CodingSchemeUID
    CodingSchemeIdentificationSequence CodingSchemeName CodingSchemeRegistry
    SeriesDescriptionCodeSequence ProcedureCodeSequence EquivalentCodeSequence
    """
    # segmentation (SEG)
    """
    SegmentSequence SegmentNumber SegmentLabel SegmentDescription SegmentAlgorithmType
    SegmentAlgorithmName SegmentedPropertyCategoryCodeSequence
    SegmentedPropertyTypeCodeSequence SegmentedPropertyTypeModifierCodeSequence
    RecommendedDisplayCIELabValue RecommendedDisplayGrayscaleValue TrackingUID
    SegmentationType SegmentationFractionalType MaximumFractionalValue SegmentsOverlap
    SegmentIdentificationSequence ContentLabel ContentDescription ContentCreatorName
    AlgorithmFamilyCodeSequence AlgorithmNameCodeSequence
    """
    # RT structure set
    """
    StructureSetLabel StructureSetName StructureSetDescription StructureSetDate
    StructureSetTime RTReferencedStudySequence RTReferencedSeriesSequence
    ContourImageSequence StructureSetROISequence ROINumber ROIName ROIDescription
    ROIGenerationAlgorithm ROIContourSequence ContourSequence ContourGeometricType
    NumberOfContourPoints ContourNumber ContourData ROIDisplayColor ReferencedROINumber
    RTROIObservationsSequence ObservationNumber ROIObservationLabel RTROIInterpretedType
    ROIInterpreter
    """
    # structured report (Clean Structured Content: content items are filtered by value type)
    """
    ValueType ConceptNameCodeSequence ConceptCodeSequence ContentSequence
    ContinuityOfContent RelationshipType ContentTemplateSequence TemplateIdentifier
    CompletionFlag VerificationFlag PreliminaryFlag ObservationDateTime ObservationUID
    UID Date Time DateTime NumericValue FloatingPointValue RationalNumeratorValue
    RationalDenominatorValue MeasuredValueSequence NumericValueQualifierCodeSequence
    GraphicData GraphicType PixelOriginInterpretation FiducialUID TemporalRangeType
    ReferencedSamplePositions ReferencedTimeOffsets ReferencedDateTime
    """
    # Type 2 or 1 attributes that leave as empty or dummy values (never copied)
    """
    AccessionNumber StudyID ReferringPhysicianName PatientBirthDate PositionReferenceIndicator
    DeviceSerialNumber SoftwareVersions
    """
)

# Written zero-length where present (Basic Profile action Z): the IOD keeps its Type 2
# attribute, the value goes.
ZERO_KEYWORDS: frozenset[str] = _words(
    """
    AccessionNumber StudyID ReferringPhysicianName PatientBirthDate ContentCreatorName
    ROIInterpreter PositionReferenceIndicator
    """
)

# Written as the dummy value where present (action D; Type 1 in the enhanced IODs).
DUMMY_KEYWORDS: frozenset[str] = _words("DeviceSerialNumber SoftwareVersions")
DUMMY_TEXT = "REMOVED"

# Free text of Type 1 attributes: cleaned, and the dummy when nothing is left.
DUMMY_IF_EMPTY_KEYWORDS: frozenset[str] = _words(
    "StructureSetLabel SegmentLabel SegmentAlgorithmName Manufacturer ManufacturerModelName"
)

# UIDs that name a class, a syntax or a scheme, never an instance: kept as they are when
# they are valid UIDs. Every other UID is replaced unless it is a registered DICOM UID.
CLASS_UID_KEYWORDS: frozenset[str] = _words(
    """
    SOPClassUID ReferencedSOPClassUID CodingSchemeUID ContextUID MappingResourceUID
    """
)

# BodyPartExamined is kept only when it is one of these defined terms (PS3.16 Annex L).
BODY_PART_TERMS: frozenset[str] = _words(
    """
    ABDOMEN ABDOMENPELVIS ADRENAL ANKLE AORTA ARM AXILLA BACK BLADDER BRAIN BREAST BRONCHUS
    BUTTOCK CALCANEUS CALF CAROTID CEREBELLUM CSPINE CTSPINE CERVIX CHEEK CHEST
    CHESTABDOMEN CHESTABDPELVIS CIRCLEOFWILLIS CLAVICLE COCCYX COLON CORNEA CORONARYARTERY
    DUODENUM EAR ELBOW WHOLEBODY ESOPHAGUS EXTREMITY EYE EYELID FACE FEMUR FINGER FOOT
    GALLBLADDER HAND HEAD HEADNECK HEART HIP HUMERUS ILEUM ILIUM IAC JAW JEJUNUM KIDNEY
    KNEE LARYNX LEG LIVER LSPINE LSSPINE LUNG MAXILLA MEDIASTINUM MOUTH NECK NECKCHEST
    NECKCHESTABDOMEN NECKCHESTABDPELV NOSE ORBIT OVARY PANCREAS PAROTID PATELLA PELVIS
    PENIS PHARYNX PROSTATE RECTUM RIB SACRUM SCAPULA SCLERA SCROTUM SHOULDER SKULL SPINE
    SPLEEN STERNUM STOMACH SUBMANDIBULAR TMJ TESTIS THIGH TSPINE TLSPINE THUMB THYMUS
    THYROID TOE TONGUE TRACHEA URETER URETHRA UTERUS VAGINA VULVA WRIST ZYGOMA
    """
)

PATIENT_SEX_TERMS: frozenset[str] = _words("M F O")

# Code strings that are typed by people rather than chosen from defined terms: cleaned
# through the vocabulary like free text (the dummy when nothing is left).
CLEANED_CODE_STRING_KEYWORDS: frozenset[str] = _words("ContentLabel")

# Clean Structured Content: SR content items of these value types are kept (recursively);
# TEXT, PNAME, WAVEFORM and by-reference items (no value type) are dropped with everything
# below them.
CONTENT_ITEM_VALUE_TYPES: frozenset[str] = _words(
    """
    CONTAINER CODE NUM UIDREF SCOORD SCOORD3D TCOORD IMAGE COMPOSITE DATE TIME DATETIME
    """
)
